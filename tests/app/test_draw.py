"""Drawing boxes and regions on the picture: the selection -> box / mask conversions with known answers,
and the pointing game's box following a drawing and its number boxes."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import texts

from ui import state
from ui.widgets import draw

EVALUATE = "pages/2_Evaluate.py"
SIZE = (224, 224)


def _selection(box=None, lasso=None) -> dict:
    return {"selection": {"points": [], "point_indices": [], "box": box or [], "lasso": lasso or []}}


def test_a_box_selection_is_that_box_in_input_pixels() -> None:
    assert draw.selection_box({"x": [10, 50], "y": [20, 60]}, SIZE) == (10, 20, 50, 60)
    assert draw.selection_box({"x": [50.4, 9.6], "y": [60, 20]}, SIZE) == (10, 20, 50, 60)  # any direction
    assert draw.selection_box({"x": [-30, 40], "y": [200, 300]}, SIZE) == (0, 200, 40, 224)  # clamped


@pytest.mark.parametrize(
    ("box", "said"),
    [
        ({"x": [300, 400], "y": [10, 50]}, "0×40 pixels"),  # right of the picture
        ({"x": [10, 11], "y": [10, 50]}, "1×40 pixels"),  # a click, not a box
        ({"x": [10], "y": [10, 50]}, "no coordinates"),
        ({"y": [10, 50]}, "no coordinates"),
        ({"x": [float("nan"), 3], "y": [10, 50]}, "no coordinates"),
    ],
)
def test_empty_or_degenerate_boxes_are_refused_with_a_reason(box, said) -> None:
    with pytest.raises(draw.BadSelection, match=said):
        draw.selection_box(box, SIZE)


def test_a_lasso_triangle_holds_the_pixels_inside() -> None:
    mask = draw.polygon_mask([0, 10, 0], [0, 0, 10], (20, 20))
    # Pixel (r, c) has its centre (c + 0.5, r + 0.5) inside x + y < 10 exactly when c + r <= 8.
    rows, cols = np.indices((20, 20))
    assert np.array_equal(mask, rows + cols <= 8) and mask.sum() == 45
    assert draw.mask_box(mask) == (0, 0, 9, 9)


def test_a_lasso_square_and_a_lasso_outside() -> None:
    mask = draw.polygon_mask([10, 50, 50, 10], [20, 20, 60, 60], SIZE)
    expected = np.zeros(SIZE, bool)
    expected[20:60, 10:50] = True
    assert np.array_equal(mask, expected)
    with pytest.raises(draw.BadSelection, match="holds no pixel"):
        draw.polygon_mask([300, 400, 350], [0, 0, 50], SIZE)
    with pytest.raises(draw.BadSelection, match="three points"):
        draw.polygon_mask([1, 2], [1, 2], SIZE)


def test_read_selection_takes_the_last_shape() -> None:
    assert draw.read_selection(None, SIZE) is None
    assert draw.read_selection(_selection(), SIZE) is None
    kind, box, mask = draw.read_selection(
        _selection(box=[{"x": [1, 5], "y": [1, 5]}, {"x": [10, 50], "y": [20, 60]}]), SIZE
    )
    assert (kind, box, mask) == ("box", (10, 20, 50, 60), None)
    kind, box, mask = draw.read_selection(_selection(lasso=[{"x": [0, 10, 0], "y": [0, 0, 10]}]), SIZE)
    assert kind == "lasso" and box == (0, 0, 9, 9) and mask.sum() == 45


def test_the_figure_shows_the_picture_in_pixel_edges_with_the_box() -> None:
    picture = np.zeros((224, 224, 3), np.uint8)
    fig = draw.figure(picture, (10, 20, 50, 60))
    image, grid = fig.data
    assert (image.x0, image.y0) == (0.5, 0.5)  # pixel c spans [c, c+1]
    assert list(fig.layout.xaxis.range) == [0, 224] and list(fig.layout.yaxis.range) == [224, 0]
    assert fig.layout.dragmode == "select"
    shape = fig.layout.shapes[0]
    assert (shape.x0, shape.y0, shape.x1, shape.y1) == (10, 20, 50, 60)
    assert min(grid.x) > 0 and max(grid.x) < 224 and len(grid.x) == 64 * 64


def _open_box(app):
    at = app(page=EVALUATE)
    at.session_state[state.EVALUATE_SECTION] = "Localisation"
    at.run()
    at.multiselect(key=state.LOC_METHODS).set_value(["gradcam"]).run()
    at.button_group(key=state.LOC_REGION).set_value("Box").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _box(at) -> tuple[int, ...]:
    return tuple(int(at.number_input(key=state.loc_box(n)).value) for n in ("x0", "y0", "x1", "y1"))


def test_the_box_is_drawn_on_a_chart_and_typed_numbers_move_it(app) -> None:
    at = _open_box(app)
    charts = at.main.get("plotly_chart")
    assert charts, "the picture is shown for drawing"
    for name, value in zip(("x0", "y0", "x1", "y1"), (0, 0, 20, 20)):
        at.number_input(key=state.loc_box(name)).set_value(value)
    at.run()
    assert not at.exception and _box(at) == (0, 0, 20, 20)
    assert "box (0, 0, 20, 20)" in texts(at)
    assert at.dataframe[0].value.iloc[0]["Pointing game"] == "miss"


def test_a_drawn_box_sets_the_numbers_and_the_metric(app) -> None:
    at = _open_box(app)
    # AppTest cannot drag: the chart's selection state is what the browser would send after a drag.
    at.session_state[state.LOC_DRAW] = _selection(
        box=[{"xref": "x", "yref": "y", "x": [0, 20], "y": [0, 20]}]
    )
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _box(at) == (0, 0, 20, 20) and "box (0, 0, 20, 20)" in texts(at)
    assert at.dataframe[0].value.iloc[0]["Pointing game"] == "miss"


def test_a_drawn_lasso_is_the_region_and_a_slip_is_refused(app) -> None:
    at = _open_box(app)
    at.session_state[state.LOC_DRAW] = _selection(lasso=[{"x": [0, 40, 0], "y": [0, 0, 40]}])
    at.run()
    assert not at.exception and _box(at) == (0, 0, 39, 39)
    assert "The region is the lasso's outline" in texts(at)
    assert "covers 1.6% of the image" in texts(at)  # 780 pixels of the triangle, not the 39×39 box's 1521
    before = _box(at)
    at.session_state[state.LOC_DRAW] = _selection(box=[{"x": [300, 400], "y": [0, 20]}])
    at.run()
    assert not at.exception and _box(at) == before
    assert "drag a larger box over it. The box below is unchanged." in texts(at)
