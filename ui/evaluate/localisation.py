"""Localisation: the pointing game (Zhang et al. 2016) and the energy-based pointing game (Score-CAM paper)
against a bundled sample's ground-truth mask or a box the user enters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

import saliency_core as sc
from saliency_core import viz
from ui import cards, display, resources, results, state
from ui.cards import PointingEntry, PointingRow
from ui.evaluate import common
from ui.results import Result
from ui.text import md
from ui.view import View
from ui.widgets import draw
from ui.widgets.variants import Variant

REGIONS = ["Ground-truth mask", "Box"]
AUTO_RUN_SECONDS = 3.0
HIT, MISS = (30, 190, 80), (235, 50, 50)
REGION_COLOUR = (0, 200, 255)
COORDS = ("x0", "y0", "x1", "y1")


def pointing_key(view: View) -> tuple:
    return ("pointing", *cards.view_key(view))


def sample_mask(view: View) -> tuple[np.ndarray, str | None] | None:
    """The bundled sample's ground-truth mask in the model's input geometry, and the object's label."""
    sample = resources.sample(view.image.sample_id) if view.image.sample_id else None
    if sample is None or sample.mask_path is None:
        return None
    cache = st.session_state.setdefault(state.EVALUATION_MASKS, {})
    key = (view.image.digest, view.info.id)
    if key not in cache:
        cache.clear()
        picture = np.repeat(sample.mask().astype(np.uint8)[..., None] * 255, 3, axis=2)
        # The mask goes through the model's own resize and crop, so it lines up with the maps.
        shown = view.model.to_image(view.model.preprocess(picture))
        cache[key] = shown[..., 0] > 127
    return cache[key], sample.label


def section(view: View) -> None:
    st.caption(
        "Does the map point at the object? **Pointing game**: a hit when the map's maximum lies within the "
        "tolerance of the object. **Energy**: the share of the map's positive saliency that falls inside it."
    )
    if common.no_target(view):
        return
    variants = common.choose_methods(view, state.LOC_METHODS)
    found = sample_mask(view)
    top = st.columns(2, gap="medium")
    if found is not None:
        state.default(state.LOC_REGION, REGIONS[0], allowed=REGIONS)
        region_kind = top[0].segmented_control("Ground truth", REGIONS, key=state.LOC_REGION, required=True)
    else:
        region_kind = "Box"
        top[0].caption(
            "Ground truth: a box you enter. Only the bundled synthetic scenes carry an object mask; pick one "
            "in the sidebar to test against it."
        )
    state.default(state.LOC_TOLERANCE, 15)
    tolerance = top[1].slider(
        "Tolerance (px)",
        0,
        50,
        key=state.LOC_TOLERANCE,
        help="A hit when the map's maximum lies within this many pixels of the object (15 in the original "
        "pointing game).",
    )
    box = None
    if region_kind == "Box":
        boxed = _box_inputs(view, found[0] if found is not None else None)
        if boxed is None:
            return
        box, region = boxed
    else:
        region, label = found  # type: ignore[misc]
        if label and view.model.task == "classification" and label != getattr(view.target, "label", label):
            st.warning(
                f"The mask marks the **{md(label)}**, but the target is **{md(view.target_label)}**: choose "
                f"the {md(label)} as target in the sidebar for a fair test.",
                icon=":material/warning:",
            )
    if not region.any():
        st.warning("The region covers no pixel of the input; enter a larger box.")
        return
    common.show_cancelled()
    if not variants:
        st.info("Choose at least one method.")
        return
    done = _maps(view, variants)
    pairs = [(v, r) for v, r in zip(variants, done) if r is not None]
    if not pairs:
        return
    try:
        entry = _evaluate(pairs, region, box, float(tolerance))
    except sc.SaliencyError as exc:  # a map the metrics refuse (NaN values): say so, keep the page
        st.warning(f"The pointing game cannot be scored: {md(exc, limit=None)}", icon=":material/error:")
        return
    cards.store().put(pointing_key(view), entry)
    _show(view, pairs, entry, region)


def _default_box(view: View, mask: np.ndarray | None) -> tuple[int, int, int, int]:
    height, width = view.picture.shape[:2]
    target_box = getattr(view.target, "box", None)
    if target_box is not None:
        x0, y0, x1, y1 = (float(v) for v in target_box)
        return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
    if mask is not None and mask.any():
        rows, cols = np.nonzero(mask)
        return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
    return width // 4, height // 4, 3 * width // 4, 3 * height // 4


def _box_inputs(view: View, mask: np.ndarray | None) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The box (input pixels) drawn on the picture or typed in four number boxes, which follow each other,
    and its region: the box, or a lasso's pixels while the numbers hold that lasso's bounding box. Reset to
    a sensible box when the image, model or target changes."""
    height, width = view.picture.shape[:2]
    if st.session_state.get(state.LOC_BOX_FOR) != cards.view_key(view):
        st.session_state[state.LOC_BOX_FOR] = cards.view_key(view)
        st.session_state.pop(state.LOC_LASSO, None)
        for name, value in zip(COORDS, _default_box(view, mask)):
            st.session_state[state.loc_box(name)] = value
    problem = _take_drawing((height, width))  # a new drawing sets the numbers before they are drawn
    for name in COORDS:
        limit = width if name.startswith("x") else height
        k = state.loc_box(name)
        st.session_state[k] = int(min(max(int(st.session_state.get(k, 0)), 0), limit))
    typed = tuple(int(st.session_state[state.loc_box(name)]) for name in COORDS)
    lasso = st.session_state.get(state.LOC_LASSO)
    drawn = lasso[1] if lasso is not None and lasso[0] == typed else None
    draw.draw(view.picture, state.LOC_DRAW, typed, height=360)
    st.caption(
        f"Drag a box on the picture (or pick the lasso in its toolbar and draw around the object), or type "
        f"the box below: input pixels of the {width}×{height} picture, x to the right, y down, (x0, y0) the "
        "top-left corner."
        + (" The region is the lasso's outline; its bounding box is below." if drawn is not None else "")
    )
    if problem:
        st.warning(problem, icon=":material/gesture:")
    columns = st.columns(4)
    values = []
    for column, name in zip(columns, COORDS):
        limit = width if name.startswith("x") else height
        values.append(int(column.number_input(name, 0, limit, step=1, key=state.loc_box(name))))
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        st.warning("The box needs x0 < x1 and y0 < y1.", icon=":material/crop_free:")
        return None
    box = (x0, y0, x1, y1)
    return box, drawn if drawn is not None else sc.metrics.region_mask(box, (height, width))


def _take_drawing(size: tuple[int, int]) -> str:
    """Apply a selection drawn since the last run to the number boxes; the problem with it, or ""."""
    seen = st.session_state.get(state.LOC_DRAWN)
    signature, found, problem = draw.new_drawing(st.session_state.get(state.LOC_DRAW), seen, size)
    st.session_state[state.LOC_DRAWN] = signature
    if problem:
        return f"{problem} The box below is unchanged."
    if found is None:
        return ""
    kind, box, mask = found
    for name, value in zip(COORDS, box):
        st.session_state[state.loc_box(name)] = value
    if kind == "lasso":
        st.session_state[state.LOC_LASSO] = (box, mask)
    else:
        st.session_state.pop(state.LOC_LASSO, None)
    return ""


def _maps(view: View, variants: Sequence[Variant]) -> list[Result | None]:
    """Stored maps; the missing ones computed when cheap or when asked."""
    stored = [results.lookup(view, v.info, v.params) for v in variants]
    missing = [v for v, r in zip(variants, stored) if r is None]
    if not missing:
        return stored
    keys = tuple(results.request_key(view, v.info, v.params) for v in variants)
    budget = AUTO_RUN_SECONDS / len(missing)
    auto = all(results.is_cheap(view, v.info, v.params, budget) for v in missing)
    box = st.empty()
    with box.container(border=True):
        texts = [
            f"- **{md(v.label)}**: {md(results.estimate_text(view, v.info, v.params)[0], limit=None)}"
            for v in missing
        ]
        st.markdown(
            f"{len(missing)} map{'s' if len(missing) > 1 else ''} still to compute:\n" + "\n".join(texts)
        )
        common.run_button(state.LOC_PENDING, keys, "Compute the maps")
    if results.should_run(state.LOC_PENDING, keys, auto):
        st.session_state[state.LOC_PENDING] = keys
        done = results.run_with_progress(
            view, [(v.label, v.info, v.params) for v in variants], state.LOC_PENDING
        )
        if all(r is not None for r in done):
            box.empty()
        return done
    return stored


def _evaluate(
    pairs: Sequence[tuple[Variant, Result]],
    region: np.ndarray,
    box: tuple[int, int, int, int] | None,
    tolerance: float,
) -> PointingEntry:
    rows = []
    for variant, result in pairs:
        distance = sc.metrics.pointing_distance(result.map, region)
        rows.append(
            PointingRow(
                label=variant.label,
                method=variant.info.id,
                params=dict(variant.params),
                hit=bool(distance <= tolerance),
                distance=float(distance),
                energy=float(sc.metrics.energy_pointing(result.map, region)),
            )
        )
    return PointingEntry("box" if box is not None else "mask", box, tolerance, float(region.mean()), rows)


def _mark(picture: np.ndarray, peak: tuple[int, int] | None, tolerance: float, hit: bool) -> np.ndarray:
    """A cross at the map's maximum and a circle of the tolerance around it, green for a hit, red else."""
    if peak is None:
        return picture
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    row, col = peak
    colour = HIT if hit else MISS
    if tolerance > 0:
        draw.ellipse(
            [col - tolerance, row - tolerance, col + tolerance, row + tolerance], outline=colour, width=2
        )
    draw.line([col - 7, row, col + 7, row], fill=colour, width=3)
    draw.line([col, row - 7, col, row + 7], fill=colour, width=3)
    return np.asarray(image)


def _show(
    view: View, pairs: Sequence[tuple[Variant, Result]], entry: PointingEntry, region: np.ndarray
) -> None:
    shown = display.current()
    tiles = [viz.draw_mask(view.picture, region, color=REGION_COLOUR, alpha=0.35)]
    captions = [
        "Ground truth: " + ("the sample's object mask" if entry.region == "mask" else f"box {entry.box}")
    ]
    for (variant, result), row in zip(pairs, entry.rows):
        picture = viz.draw_mask(display.overlay(view, result, shown), region, color=REGION_COLOUR, alpha=0.0)
        tiles.append(_mark(picture, sc.metrics.max_location(result.map), entry.tolerance, row.hit))
        captions.append(f"{variant.label}: {_hit_text(row)} · energy {row.energy:.2f}")
    for first in range(0, len(tiles), 3):  # one row at a time, so that rows stay aligned
        row = st.columns(3)
        for column, tile, caption in zip(row, tiles[first : first + 3], captions[first : first + 3]):
            column.image(tile, caption=caption, width="stretch")
    table = [
        {
            "Method": row.label,
            "Pointing game": "hit" if row.hit else "miss",
            "Distance of the maximum (px)": None if not np.isfinite(row.distance) else round(row.distance, 1),
            "Energy inside": round(row.energy, 3),
        }
        for row in entry.rows
    ]
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        f"The region covers {entry.area:.1%} of the image: a uniform map would put that share of its energy "
        f"inside. Cross: the map's maximum; circle: the {entry.tolerance:g} px tolerance."
    )


def _hit_text(row: PointingRow) -> str:
    if not np.isfinite(row.distance):
        return "miss (the map is constant)"
    if row.hit:
        return "hit" + (f" ({row.distance:.0f} px away)" if row.distance > 0 else "")
    return f"miss ({row.distance:.0f} px away)"
