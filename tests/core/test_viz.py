"""Known answers for saliency_core.viz: normalisation, colormaps, overlays, grids, figures, drawing."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from saliency_core import viz

SIGNED = np.array([[-2.0, -1.0, 0.0], [1.0, 2.0, 4.0]], np.float32)


def test_normalise_positive_negative_absolute_signed() -> None:
    np.testing.assert_allclose(viz.normalise(SIGNED, "positive"), [[0, 0, 0], [0.25, 0.5, 1.0]])
    np.testing.assert_allclose(viz.normalise(SIGNED, "negative"), [[1.0, 0.5, 0], [0, 0, 0]])
    np.testing.assert_allclose(viz.normalise(SIGNED, "absolute"), [[0.5, 0.25, 0], [0.25, 0.5, 1.0]])
    # signed: 0.5 is zero, the largest magnitude (4) maps to 1 and -4 would map to 0
    np.testing.assert_allclose(viz.normalise(SIGNED, "signed"), [[0.25, 0.375, 0.5], [0.625, 0.75, 1.0]])


def test_normalise_accepts_tensors_and_leading_singletons() -> None:
    out = viz.normalise(torch.tensor(SIGNED)[None, None], "positive")
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out, viz.normalise(SIGNED, "positive"))


def test_percentile_clip_saturates_the_top() -> None:
    values = np.arange(101, dtype=np.float32).reshape(1, 101)  # 0..100
    out = viz.normalise(values, "positive", clip_percentile=50.0)  # the 50th percentile is 50
    assert out[0, 50] == pytest.approx(1.0)
    assert out[0, 25] == pytest.approx(0.5)
    assert np.all(out[0, 50:] == 1.0)


def test_shared_scale_uses_the_largest_map() -> None:
    a = np.array([[0.0, 1.0]], np.float32)
    b = np.array([[0.0, 4.0]], np.float32)
    own = viz.normalise_many([a, b], shared=False)
    shared = viz.normalise_many([a, b], shared=True)
    np.testing.assert_allclose(own[0], [[0, 1]])
    np.testing.assert_allclose(shared[0], [[0, 0.25]])
    np.testing.assert_allclose(shared[1], [[0, 1]])
    assert viz.shared_scale([a, b]) == pytest.approx(4.0)


def test_zero_and_nonfinite_maps_do_not_divide_by_zero() -> None:
    assert np.all(viz.normalise(np.zeros((4, 4))) == 0)
    assert np.all(viz.normalise(np.zeros((4, 4)), "signed") == 0.5)
    out = viz.normalise(np.array([[np.nan, 1.0], [np.inf, 2.0]]))
    assert np.all(np.isfinite(out)) and out.max() == pytest.approx(1.0)


def test_bad_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="sign"):
        viz.normalise(SIGNED, "both")


def test_colormap_luts_are_rgb_and_span_their_range() -> None:
    for name in viz.COLORMAPS:
        lut = viz.colormap_lut(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(viz.colormap_lut("gray")[[0, 255]], [[0, 0, 0], [255, 255, 255]])
    # OpenCV is BGR; our tables are RGB: jet ends red, inferno starts black and ends pale yellow
    r, _g, b = viz.colormap_lut("jet")[255]
    assert r > 100 and b < 50
    assert viz.colormap_lut("inferno")[0].max() < 10
    assert viz.colormap_lut("inferno")[255][0] > 200 and viz.colormap_lut("inferno")[255][2] < 200
    with pytest.raises(ValueError, match="colormap"):
        viz.colormap_lut("rainbow-unicorn")


def test_apply_colormap_and_colorscale_agree() -> None:
    rgb = viz.apply_colormap(np.array([[0.0, 1.0]]), "gray")
    np.testing.assert_array_equal(rgb, [[[0, 0, 0], [255, 255, 255]]])
    scale = viz.plotly_colorscale("gray", stops=3)
    assert scale[0] == [0.0, "rgb(0,0,0)"] and scale[-1] == [1.0, "rgb(255,255,255)"]


def test_overlay_alpha_zero_is_the_image_and_alpha_one_the_colour() -> None:
    image = np.full((4, 6, 3), 100, np.uint8)
    map01 = np.ones((4, 6), np.float32)
    np.testing.assert_array_equal(viz.overlay(image, map01, "gray", alpha=0.0), image)
    np.testing.assert_array_equal(viz.overlay(image, map01, "gray", alpha=1.0), np.full_like(image, 255))
    half = viz.overlay(image, map01, "gray", alpha=0.5)
    assert np.all(half == round(0.5 * 100 + 0.5 * 255))
    # opacity by value: zero saliency leaves the picture unchanged even at alpha 1
    zero = viz.overlay(image, np.zeros((4, 6)), "gray", alpha=1.0, alpha_by_value=True)
    np.testing.assert_array_equal(zero, image)


def test_overlay_resizes_the_map_to_the_picture() -> None:
    out = viz.overlay(np.zeros((32, 48, 3), np.uint8), np.ones((7, 7)), "gray", alpha=1.0)
    assert out.shape == (32, 48, 3) and np.all(out == 255)


def test_difference_of_two_maps() -> None:
    d = viz.difference(np.array([[1.0, 0.0]]), np.array([[0.25, 0.5]]))
    np.testing.assert_allclose(d, [[0.75, -0.5]])


def test_grid_places_tiles_and_titles() -> None:
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[..., 2] = 255
    out = viz.grid([red, blue, red], ["a", "b", "c"], columns=2, pad=4, font_size=10)
    title_h = 18
    assert out.shape == (2 * (20 + title_h) + 3 * 4, 2 * 30 + 3 * 4, 3)
    assert tuple(out[4 + title_h + 5, 4 + 5]) == (255, 0, 0)  # first tile
    assert tuple(out[4 + title_h + 5, 4 + 30 + 4 + 5]) == (0, 0, 255)  # second tile, resized to 20x30
    assert tuple(out[-3, -3]) == (255, 255, 255)  # background where the fourth tile would be
    with pytest.raises(ValueError):
        viz.grid([red], ["a", "b"])


def test_png_bytes_decode_and_downscale() -> None:
    data = viz.png_bytes(np.zeros((400, 1200, 3), np.uint8), max_side=600)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.size == (600, 200)


def test_heatmap_figure_hovers_raw_values() -> None:
    raw = np.array([[-1.0, 2.0], [0.5, 4.0]], np.float32)
    figure = viz.heatmap_figure(raw, viz.normalise(raw), cmap="viridis", title="t")
    trace = figure.data[0]
    assert trace.type == "heatmap"
    np.testing.assert_allclose(np.asarray(trace.customdata), raw)
    np.testing.assert_allclose(np.asarray(trace.z), [[0, 0.5], [0.125, 1.0]])
    assert "customdata" in trace.hovertemplate


def test_matrix_figure_labels_cells() -> None:
    figure = viz.matrix_figure(np.array([[1.0, 0.25], [0.25, 1.0]]), ["a", "b"])
    trace = figure.data[0]
    assert list(figure.layout.xaxis.ticktext) == ["a", "b"] and trace.text[0][1] == "0.25"
    assert trace.customdata[0][1] == ["a", "b"]  # hover names row (y) then column (x)


def test_matrix_figure_keeps_every_cell_when_names_are_alike() -> None:
    # Plotly merges equal category names; cells at integer positions cannot collapse.
    values = np.array([[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]])
    figure = viz.matrix_figure(values, ["Grad-CAM · l…", "Grad-CAM · l…", "Grad-CAM · l…"])
    trace = figure.data[0]
    assert list(trace.x) == [0, 1, 2] and list(trace.y) == [0, 1, 2]
    assert list(figure.layout.yaxis.tickvals) == [0, 1, 2]
    assert trace.text[1][2] == "0.30" and trace.text[2][0] == "0.20"


def test_draw_boxes_colours_the_outline_and_dims_others_when_highlighting() -> None:
    image = np.full((40, 40, 3), 200, np.uint8)
    out = viz.draw_boxes(image, [[5, 5, 30, 30]], colors=[(255, 0, 0)], thickness=1)
    assert tuple(out[5, 15]) == (255, 0, 0) and tuple(out[15, 15]) == (200, 200, 200)
    assert np.array_equal(image, np.full((40, 40, 3), 200, np.uint8))  # the input is not modified
    two = viz.draw_boxes(image, [[2, 2, 10, 10], [20, 20, 35, 35]], labels=["a", "b"], highlight=1)
    assert two[38, 38].max() < 200  # dimmed outside the boxes
    assert viz.draw_boxes(image, []).shape == image.shape


def test_draw_keypoints_skips_invisible_points() -> None:
    image = np.zeros((30, 30, 3), np.uint8)
    points = [[5, 5, 1.0], [20, 20, 0.0], [25, 5, 1.0]]
    out = viz.draw_keypoints(image, points, skeleton=[(0, 2), (0, 1)], color=(0, 255, 0), radius=2)
    assert tuple(out[5, 5]) == (0, 255, 0)
    assert out[20, 20].max() == 0  # invisible point and its edge are not drawn
    assert out[5, 15][1] > 0  # the visible edge 0-2 is
    marked = viz.draw_keypoints(image, points, highlight=0, names=["nose", "x", "y"])
    assert np.abs(marked[5, 5].astype(int) - (230, 25, 75)).max() < 10


def test_draw_mask_tints_inside_only() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    out = viz.draw_mask(image, mask, color=(200, 100, 0), alpha=0.5, contour=False)
    assert tuple(out[10, 10]) == (100, 50, 0) and tuple(out[0, 0]) == (0, 0, 0)


# --- styles: how pixel-level maps are drawn (as their papers do) ---------------------------------------------
def test_smoothed_style_blurs_a_single_pixel_into_a_peak_at_that_pixel() -> None:
    saliency = np.zeros((50, 50), np.float32)
    saliency[20, 30] = -4.0  # negative: the smoothed style draws the magnitude
    shown = viz.style_map(saliency, "smoothed", "absolute", 100.0, sigma=2.0)
    assert np.unravel_index(np.argmax(shown), shown.shape) == (20, 30)
    assert shown[20, 30] == pytest.approx(1.0)
    # a Gaussian of sigma 2: one pixel away exp(-1/8) of the peak, symmetric on each side
    assert shown[20, 31] == pytest.approx(np.exp(-1 / 8), rel=0.02)
    assert shown[20, 29] == pytest.approx(shown[20, 31]) and shown[21, 30] == pytest.approx(shown[20, 31])
    assert shown[0, 0] == pytest.approx(0.0, abs=1e-6)
    unblurred = viz.style_map(saliency, "overlay", "absolute", 100.0)
    assert unblurred[20, 31] == 0.0  # the overlay style draws the map as it is


def test_gray_style_is_the_magnitude_alone_in_grayscale() -> None:
    saliency = np.array([[-2.0, 1.0], [0.0, 0.5]], np.float32)
    assert viz.style_sign("gray", "auto") == "absolute" and viz.style_sign("gray", "signed") == "absolute"
    assert (
        viz.style_sign("gray", "positive") == "positive" and viz.style_sign("overlay", "signed") == "signed"
    )
    shown = viz.style_map(saliency, "gray", viz.style_sign("gray", "auto"), 100.0)
    np.testing.assert_allclose(shown, [[1.0, 0.5], [0.0, 0.25]])
    image = np.full((2, 2, 3), (10, 200, 30), np.uint8)
    picture = viz.style_picture(image, shown, "gray", cmap="jet", alpha=0.5)
    np.testing.assert_array_equal(picture[..., 0], [[255, 128], [0, 64]])  # white = strong, no picture
    assert (picture[..., 0] == picture[..., 1]).all() and (picture[..., 1] == picture[..., 2]).all()
    blended = viz.style_picture(image, shown, "overlay", cmap="jet", alpha=0.5)
    np.testing.assert_array_equal(blended, viz.overlay(image, shown, "jet", 0.5))
    with pytest.raises(ValueError, match="display style"):
        viz.style_map(saliency, "speckle")


def test_pixel_level_methods_declare_how_their_papers_draw_them() -> None:
    import saliency_core as sc
    from saliency_core.methods.base import MethodSpec, register

    declared = {m.id: m.display for m in sc.list_methods()}
    assert declared["gradient"] == "gray" and declared["guided_backprop"] == "gray"
    assert declared["gradient_x_input"] in ("gray", "smoothed")
    assert declared["gradcam"] == "overlay" and declared["occlusion"] == "overlay"
    assert set(declared.values()) <= set(viz.STYLES)
    bad = MethodSpec(
        "bad_display", "gradient", "Bad", "", compute=lambda ctx: (None, None), display="speckle"
    )
    with pytest.raises(ValueError, match="display"):
        register(bad)
    assert "bad_display" not in {m.id for m in sc.list_methods()}


def test_heatmap_figure_downsamples_by_area_and_hovers_input_pixels() -> None:
    raw = np.arange(16, dtype=np.float32).reshape(4, 4)
    figure = viz.heatmap_figure(raw, viz.normalise(raw), max_side=2, fill_height=True, height=None)
    trace = figure.data[0]
    np.testing.assert_allclose(np.asarray(trace.customdata), [[2.5, 4.5], [10.5, 12.5]])  # 2x2 means
    np.testing.assert_allclose(np.asarray(trace.x), [0.5, 2.5])  # centres of the cells in input pixels
    assert trace.colorbar.len == 1.0 and figure.layout.height is None


def test_the_chosen_box_stands_out_among_faded_thin_others() -> None:
    image = np.full((60, 60, 3), 200, np.uint8)
    boxes = [[5, 5, 50, 50], [10, 10, 40, 40], [15, 15, 55, 55]]
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    out = viz.draw_boxes(image, boxes, colors=colours, highlight=1, thickness=2)
    assert tuple(out[10, 25]) == (0, 255, 0) and tuple(out[12, 25]) == (0, 255, 0)  # thick, full colour
    assert tuple(out[5, 25]) == (192, 64, 64)  # another box: its colour halfway to grey, one pixel wide
    assert tuple(out[6, 25]) != (192, 64, 64)
    assert not ((out == (255, 0, 0)).all(axis=2)).any() and not ((out == (0, 0, 255)).all(axis=2)).any()
