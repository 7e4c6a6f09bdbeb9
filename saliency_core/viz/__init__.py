"""Pictures from saliency maps: normalisation, colormaps, overlays, grids, plotly figures, prediction drawing.

Everything takes numpy arrays or torch tensors and returns numpy arrays (uint8 RGB pictures or float maps in
[0, 1]) or plotly figures, so the app, notebooks and the CLI draw maps the same way. No UI imports here;
plotly is imported only by the functions that build figures.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import plotly.graph_objects as go

SIGNS = ("positive", "negative", "absolute", "signed")
"""How a signed map becomes intensities: keep the positive part, the negative part, the magnitude, or both
signs around 0.5 ("signed", for diverging colormaps)."""

_CV2_MAPS = {
    "inferno": cv2.COLORMAP_INFERNO,
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "hot": cv2.COLORMAP_HOT,
    "cividis": cv2.COLORMAP_CIVIDIS,
}
# Our own LUTs (OpenCV has no good diverging map): anchor colours interpolated linearly.
_ANCHORS = {
    "gray": [(0, 0, 0), (255, 255, 255)],
    "coolwarm": [(59, 76, 192), (221, 221, 221), (180, 4, 38)],
    "bwr": [(0, 0, 255), (255, 255, 255), (255, 0, 0)],
}
COLORMAPS: tuple[str, ...] = (*_CV2_MAPS, *_ANCHORS)
DIVERGING: tuple[str, ...] = ("coolwarm", "bwr")


# --- arrays --------------------------------------------------------------------------------------------
def to_numpy(value: Any) -> np.ndarray:
    """A float32 numpy array from a numpy array or a torch tensor (any device, with or without grad)."""
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").float().numpy()
    return np.asarray(value, dtype=np.float32)


def as_map(value: Any) -> np.ndarray:
    """A 2-D float32 map: leading singleton dimensions dropped, channels of a [C, H, W] map summed."""
    array = to_numpy(value)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:
        array = array.sum(0)
    if array.ndim != 2:
        raise ValueError(f"Expected a 2-D saliency map, got shape {array.shape}.")
    return array


def _rectify(saliency: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.maximum(saliency, 0.0)
    if sign == "negative":
        return np.maximum(-saliency, 0.0)
    if sign in ("absolute", "signed"):
        return np.abs(saliency)
    raise ValueError(f"sign must be one of {', '.join(SIGNS)}; got {sign!r}.")


def map_scale(saliency: Any, sign: str = "positive", clip_percentile: float = 100.0) -> float:
    """The value that `normalise` maps to 1: the `clip_percentile` percentile of the rectified map."""
    values = _rectify(as_map(saliency), sign)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0
    return float(np.percentile(finite, float(np.clip(clip_percentile, 0.0, 100.0))))


def shared_scale(maps: Sequence[Any], sign: str = "positive", clip_percentile: float = 100.0) -> float:
    """One scale for several maps (the largest of their scales), so they can be compared on one range."""
    return max((map_scale(m, sign, clip_percentile) for m in maps), default=0.0)


def normalise(
    saliency: Any,
    sign: str = "positive",
    clip_percentile: float = 100.0,
    scale: float | None = None,
) -> np.ndarray:
    """A map in [0, 1] for display.

    The map is rectified by `sign` and divided by `scale` (default: its own `clip_percentile` percentile, as
    captum's visualisation does), then clipped, so values above the percentile saturate. "signed" keeps both
    signs: 0.5 is zero, 1 is +scale and 0 is -scale. A map that is zero everywhere stays zero (0.5 if signed).
    """
    array = as_map(saliency)
    array = np.where(np.isfinite(array), array, 0.0).astype(np.float32)
    hi = map_scale(array, sign, clip_percentile) if scale is None else float(scale)
    if sign == "signed":
        if hi <= 0:
            return np.full(array.shape, 0.5, np.float32)
        return np.clip(0.5 + 0.5 * array / hi, 0.0, 1.0).astype(np.float32)
    values = _rectify(array, sign)
    if hi <= 0:
        return np.zeros(array.shape, np.float32)
    return np.clip(values / hi, 0.0, 1.0).astype(np.float32)


def normalise_many(
    maps: Sequence[Any], sign: str = "positive", clip_percentile: float = 100.0, shared: bool = False
) -> list[np.ndarray]:
    """Several maps in [0, 1]: each on its own range, or all on one shared range."""
    scale = shared_scale(maps, sign, clip_percentile) if shared else None
    return [normalise(m, sign, clip_percentile, scale) for m in maps]


def resize_map(map01: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map resized (bilinear) to (height, width)."""
    height, width = size
    if map01.shape == (height, width):
        return map01
    return cv2.resize(map01.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


# --- colour ----------------------------------------------------------------------------------------------
@cache
def colormap_lut(name: str) -> np.ndarray:
    """The colormap as a [256, 3] uint8 RGB table."""
    if name in _CV2_MAPS:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        bgr = cv2.applyColorMap(ramp, _CV2_MAPS[name]).reshape(256, 3)
        lut = bgr[:, ::-1].copy()
    elif name in _ANCHORS:
        anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
        positions = np.linspace(0.0, 1.0, len(anchors))
        t = np.linspace(0.0, 1.0, 256)
        lut = np.stack([np.interp(t, positions, anchors[:, c]) for c in range(3)], axis=1)
        lut = np.round(lut).astype(np.uint8)
    else:
        raise ValueError(f"Unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}.")
    lut.setflags(write=False)
    return lut


def apply_colormap(map01: Any, cmap: str = "inferno") -> np.ndarray:
    """A map in [0, 1] as an HxWx3 uint8 RGB picture."""
    values = np.clip(as_map(map01), 0.0, 1.0)
    index = np.round(values * 255.0).astype(np.uint8)
    return colormap_lut(cmap)[index]


def plotly_colorscale(cmap: str = "inferno", stops: int = 11) -> list[list[Any]]:
    """The same colormap as a plotly colorscale, so figures match the PNG overlays."""
    lut = colormap_lut(cmap)
    scale = []
    for t in np.linspace(0.0, 1.0, stops):
        r, g, b = lut[round(t * 255)]
        scale.append([float(t), f"rgb({r},{g},{b})"])
    return scale


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An HxWx3 uint8 picture from a PIL image or an HxW / HxWx3 / HxWx4 array."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"Expected an HxWx3 image, got shape {array.shape}.")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def overlay(
    image: Any, map01: Any, cmap: str = "inferno", alpha: float = 0.5, alpha_by_value: bool = False
) -> np.ndarray:
    """The coloured map blended over the picture: (1 - alpha) * image + alpha * colour, as uint8.

    The map is resized to the picture if needed. With `alpha_by_value` the opacity also scales with the
    map's value, so low-saliency pixels show the picture unchanged.
    """
    picture = to_rgb_uint8(image)
    values = resize_map(np.clip(as_map(map01), 0.0, 1.0), picture.shape[:2])
    colour = apply_colormap(values, cmap).astype(np.float32)
    weight = float(np.clip(alpha, 0.0, 1.0))
    weights = (values * weight)[..., None] if alpha_by_value else weight
    blended = (1.0 - weights) * picture.astype(np.float32) + weights * colour
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def difference(map_a: Any, map_b: Any) -> np.ndarray:
    """a - b of two maps already in [0, 1] (the second resized to the first): values in [-1, 1]."""
    a = as_map(map_a)
    b = resize_map(as_map(map_b), a.shape)
    return (a - b).astype(np.float32)


# --- composition -----------------------------------------------------------------------------------------
@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the small bitmap font still works
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def grid(
    tiles: Sequence[Any],
    titles: Sequence[str] | None = None,
    columns: int = 4,
    tile_size: int | None = None,
    pad: int = 8,
    font_size: int = 14,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Pictures side by side in rows of `columns`, each under its title, as one uint8 RGB picture.

    Tiles are resized to `tile_size` (the first tile's size by default) so differently sized maps line up.
    """
    pictures = [to_rgb_uint8(t) for t in tiles]
    if not pictures:
        raise ValueError("grid() needs at least one tile.")
    titles = list(titles) if titles is not None else [""] * len(pictures)
    if len(titles) != len(pictures):
        raise ValueError(f"{len(pictures)} tiles but {len(titles)} titles.")
    th, tw = (tile_size, tile_size) if tile_size else pictures[0].shape[:2]
    columns = max(1, min(columns, len(pictures)))
    rows = -(-len(pictures) // columns)
    title_h = font_size + 8 if any(titles) else 0
    width = columns * tw + (columns + 1) * pad
    height = rows * (th + title_h) + (rows + 1) * pad
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    for i, (picture, title) in enumerate(zip(pictures, titles)):
        r, c = divmod(i, columns)
        x = pad + c * (tw + pad)
        y = pad + r * (th + title_h + pad)
        if title:
            draw.text((x, y + 2), _fit_text(draw, title, tw, font), fill=(30, 30, 30), font=font)
        tile = Image.fromarray(picture)
        if tile.size != (tw, th):
            tile = tile.resize((tw, th), Image.Resampling.BILINEAR)
        canvas.paste(tile, (x, y + title_h))
    return np.asarray(canvas)


def colorbar(cmap: str = "inferno", width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal colour ramp from 0 (left) to 1 (right), as uint8 RGB."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return apply_colormap(ramp, cmap)


def png_bytes(image: Any, max_side: int | None = None) -> bytes:
    """A picture encoded as compressed PNG, optionally downscaled so its longer side is at most `max_side`."""
    picture = Image.fromarray(to_rgb_uint8(image))
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# --- figures ---------------------------------------------------------------------------------------------
def heatmap_figure(
    saliency: Any,
    map01: Any | None = None,
    cmap: str = "inferno",
    title: str = "",
    height: int = 420,
    zrange: tuple[float, float] = (0.0, 1.0),
) -> go.Figure:
    """An interactive heatmap: colours from the display map, hover showing the raw and normalised values.

    `saliency` is the raw (signed) map; `map01` what is displayed (default: `normalise(saliency)`), on the
    colour range `zrange` (e.g. (-1, 1) for a difference of two maps).
    """
    import plotly.graph_objects as go

    raw = as_map(saliency)
    shown = as_map(map01) if map01 is not None else normalise(raw)
    if shown.shape != raw.shape:
        shown = resize_map(shown, raw.shape)
    figure = go.Figure(
        go.Heatmap(
            z=shown,
            customdata=raw,
            zmin=float(zrange[0]),
            zmax=float(zrange[1]),
            colorscale=plotly_colorscale(cmap),
            colorbar={"thickness": 10, "len": 0.9, "outlinewidth": 0, "tickfont": {"size": 10}},
            hovertemplate="x %{x}, y %{y}<br>value %{customdata:.4g}<br>shown %{z:.2f}<extra></extra>",
        )
    )
    figure.update_yaxes(
        autorange="reversed", scaleanchor="x", constrain="domain", showticklabels=False, showgrid=False
    )
    figure.update_xaxes(constrain="domain", showticklabels=False, showgrid=False)
    figure.update_layout(
        title={"text": title} if title else None,
        height=height,
        margin={"l": 0, "r": 0, "t": 32 if title else 0, "b": 0},
    )
    return figure


def matrix_figure(
    matrix: Any,
    names: Sequence[str],
    title: str = "",
    zmin: float = -1.0,
    zmax: float = 1.0,
    cmap: str = "coolwarm",
    height: int = 420,
) -> go.Figure:
    """A labelled square matrix (e.g. agreement between maps) with each value written in its cell."""
    import plotly.graph_objects as go

    values = to_numpy(matrix)
    labels = list(names)
    text = [[f"{v:.2f}" if np.isfinite(v) else "–" for v in row] for row in values]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=labels,
            y=labels,
            zmin=zmin,
            zmax=zmax,
            colorscale=plotly_colorscale(cmap),
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            colorbar={"thickness": 12},
        )
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(
        title={"text": title} if title else None,
        height=height,
        margin={"l": 8, "r": 8, "t": 36 if title else 8, "b": 8},
    )
    return figure


# --- predictions -----------------------------------------------------------------------------------------
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
    (0, 128, 128),
)


def palette(n: int) -> list[tuple[int, int, int]]:
    """`n` distinct RGB colours (cycling after ten)."""
    return [_PALETTE[i % len(_PALETTE)] for i in range(n)]


def _dim(picture: np.ndarray, amount: float = 0.45) -> np.ndarray:
    grey = picture.mean(axis=2, keepdims=True)
    return np.round(picture * (1 - amount) + grey * amount * 0.6).astype(np.uint8)


def _label(
    picture: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], size: int = 13
) -> np.ndarray:
    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    y0 = y - h if y - h >= 0 else y
    x0 = int(np.clip(x, 0, max(0, picture.shape[1] - w)))
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    draw.text((x0 + 3, y0 + 2 - top), text, fill=(0, 0, 0) if luminance > 150 else (255, 255, 255), font=font)
    return np.array(canvas)


def draw_boxes(
    image: Any,
    boxes: Any,
    labels: Sequence[str] | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    highlight: int | None = None,
    thickness: int = 2,
    font_size: int = 13,
) -> np.ndarray:
    """Boxes (x0, y0, x1, y1) in pixels drawn on a copy of the picture, each with an optional label.

    With `highlight`, that box is drawn thicker and the others thinner over a dimmed picture.
    """
    picture = to_rgb_uint8(image).copy()
    array = to_numpy(boxes).reshape(-1, 4) if len(boxes) else np.zeros((0, 4), np.float32)
    colours = list(colors) if colors is not None else palette(len(array))
    if highlight is not None and len(array):
        picture = _dim(picture)
    order = [i for i in range(len(array)) if i != highlight] + ([highlight] if highlight is not None else [])
    for i in order:
        if not 0 <= i < len(array):
            continue
        x0, y0, x1, y1 = (round(float(v)) for v in array[i])
        width = (
            thickness + 2
            if i == highlight
            else (max(1, thickness - 1) if highlight is not None else thickness)
        )
        cv2.rectangle(picture, (x0, y0), (x1, y1), tuple(int(c) for c in colours[i]), width)
        if labels is not None and i < len(labels) and labels[i]:
            picture = _label(picture, str(labels[i]), x0, y0, tuple(int(c) for c in colours[i]), font_size)
    return picture


def draw_keypoints(
    image: Any,
    keypoints: Any,
    skeleton: Sequence[tuple[int, int]] = (),
    color: tuple[int, int, int] = (0, 255, 128),
    radius: int = 3,
    threshold: float = 0.0,
    highlight: int | None = None,
    names: Sequence[str] | None = None,
    font_size: int = 13,
) -> np.ndarray:
    """Keypoints [K, 3] (x, y, visibility or score) and skeleton edges drawn on a copy of the picture.

    Points whose third value is not above `threshold` are skipped; `highlight` marks one keypoint larger
    (with its name when `names` is given).
    """
    picture = to_rgb_uint8(image).copy()
    points = to_numpy(keypoints).reshape(-1, 3)
    visible = points[:, 2] > threshold
    colour = tuple(int(c) for c in color)
    for a, b in skeleton:
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            pa = (round(float(points[a, 0])), round(float(points[a, 1])))
            pb = (round(float(points[b, 0])), round(float(points[b, 1])))
            cv2.line(picture, pa, pb, colour, max(1, radius // 2), cv2.LINE_AA)
    for i, (x, y, _) in enumerate(points):
        if not visible[i]:
            continue
        centre = (round(float(x)), round(float(y)))
        if i == highlight:
            cv2.circle(picture, centre, radius * 2 + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(picture, centre, radius * 2, (230, 25, 75), -1, cv2.LINE_AA)
        else:
            cv2.circle(picture, centre, radius, colour, -1, cv2.LINE_AA)
    if highlight is not None and names is not None and 0 <= highlight < len(points) and visible[highlight]:
        x, y, _ = points[highlight]
        picture = _label(
            picture,
            str(names[highlight]),
            round(float(x)) + 6,
            round(float(y)) - 6,
            (230, 25, 75),
            font_size,
        )
    return picture


def draw_mask(
    image: Any,
    mask: Any,
    color: tuple[int, int, int] = (0, 200, 255),
    alpha: float = 0.4,
    contour: bool = True,
) -> np.ndarray:
    """A region (bool or [0, 1] mask, resized to the picture) tinted over a copy of the picture, outlined."""
    picture = to_rgb_uint8(image)
    region = resize_map(as_map(mask), picture.shape[:2]) > 0.5
    out = picture.astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    out[region] = (1.0 - alpha) * out[region] + alpha * tint
    out = np.round(out).astype(np.uint8)
    if contour:
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 2)
    return out


__all__ = [
    "COLORMAPS",
    "DIVERGING",
    "SIGNS",
    "apply_colormap",
    "as_map",
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
    "resize_map",
    "shared_scale",
    "to_numpy",
    "to_rgb_uint8",
]
