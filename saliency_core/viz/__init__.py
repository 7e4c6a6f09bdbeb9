"""Pictures from saliency maps: normalisation, colormaps, overlays, grids, plotly figures, prediction drawing.

Everything takes numpy arrays or torch tensors and returns numpy arrays (uint8 RGB pictures or float maps in
[0, 1]) or plotly figures, so the app, notebooks and the CLI draw maps the same way. No UI imports here;
plotly is imported only by the functions that build figures.

The modules, by job: `maps` (float maps: to_numpy, as_map, scales, normalise, resize_map, difference),
`colormaps` (lookup tables, apply_colormap, plotly_colorscale, colorbar), `pictures` (to_rgb_uint8, overlay,
grid, png_bytes), `draw` (boxes, keypoints, masks, palette), `styles` (a map drawn as an overlay, in grayscale
or smoothed) and `figures` (plotly heatmap and matrix). Import from `saliency_core.viz` itself; every public
name is here.
"""

from .colormaps import COLORMAPS, DIVERGING, apply_colormap, colorbar, colormap_lut, plotly_colorscale
from .draw import draw_boxes, draw_keypoints, draw_mask, palette
from .figures import heatmap_figure, matrix_figure
from .maps import (
    SIGNS,
    as_map,
    difference,
    map_scale,
    normalise,
    normalise_many,
    rectify,
    resize_map,
    shared_scale,
    to_numpy,
)
from .pictures import grid, overlay, png_bytes, to_rgb_uint8
from .styles import STYLES, check_style, smooth, style_map, style_picture, style_sign

__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "SIGNS",
    "STYLES",
    "apply_colormap",
    "as_map",
    "check_style",
    "colorbar",
    "colormap_lut",
    "difference",
    "draw_boxes",
    "draw_keypoints",
    "draw_mask",
    "grid",
    "heatmap_figure",
    "map_scale",
    "matrix_figure",
    "normalise",
    "normalise_many",
    "overlay",
    "palette",
    "plotly_colorscale",
    "png_bytes",
    "rectify",
    "resize_map",
    "shared_scale",
    "smooth",
    "style_map",
    "style_picture",
    "style_sign",
    "to_numpy",
    "to_rgb_uint8",
]
