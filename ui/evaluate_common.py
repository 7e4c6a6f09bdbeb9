"""What the Evaluate page's sections share: the session's store of evaluations, method pickers, and running
metric jobs under one progress bar with a Cancel button.

Evaluations live in `st.session_state` (never recomputed when the user switches tabs or pages), keyed by the
view (image, model, weights, target) and the settings that produced them. Cancelling works as on Explore:
the Cancel button reruns the script, which stops the running one at its next progress report.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st

import saliency_core as sc
from ui import params, resources, results, state
from ui.progress import Job
from ui.progress import run_jobs as _run_jobs
from ui.view import View

PREFIX = state.EVALUATE_PREFIX  # widget keys (kept across pages)
STORE = "evaluations.store"  # EvalStore (not a widget)
CANCELLED = "evaluations.cancelled"
MAX_ENTRIES = 128
DEFAULT_METHODS = ("gradcam", "gradient")

ProgressFn = Callable[[float, str], None]


# --- stored evaluations ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CurveEntry:
    """One deletion or insertion curve of a method's map (method "random" for the random-order reference)."""

    label: str
    method: str
    params: dict[str, Any]
    steps: int
    curve: sc.metrics.Curve

    def card(self) -> dict[str, Any]:
        return self.curve.as_dict() | {
            "method": self.method,
            "label": self.label,
            "params": self.params,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class PointingRow:
    label: str
    method: str
    params: dict[str, Any]
    hit: bool
    distance: float  # pixels from the map's maximum to the region (inf: the map is constant)
    energy: float


@dataclass(frozen=True, eq=False)
class PointingEntry:
    """The pointing games last shown for a view: against what, with which tolerance, per method."""

    region: str  # "mask" | "box"
    box: tuple[int, int, int, int] | None
    tolerance: float
    area: float  # the region's share of the image (what a uniform map scores in energy)
    rows: list[PointingRow]

    def card(self, rows: Sequence[PointingRow] | None = None) -> dict[str, Any]:
        return {
            "region": "ground-truth mask of the sample" if self.region == "mask" else "box",
            "box": list(self.box) if self.box is not None else None,
            "tolerance_px": self.tolerance,
            "region_share": self.area,
            "methods": [
                {
                    "method": r.method,
                    "label": r.label,
                    "params": r.params,
                    "hit": r.hit,
                    "distance_px": r.distance,
                    "energy": r.energy,
                }
                for r in (self.rows if rows is None else rows)
            ],
        }


@dataclass(frozen=True, eq=False)
class SanityEntry:
    """A sanity check: stage maps as arrays and their similarity to the original map."""

    kind: str  # "cascading" | "independent" | "random_logit"
    method: str
    title: str
    params: dict[str, Any]
    seed: int
    stages: list[str]  # for random_logit: the target and the other class
    maps: list[np.ndarray] = field(repr=False)
    spearman: list[float]
    ssim: list[float]

    def card(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "stages": self.stages,
            "spearman": self.spearman,
            "ssim": self.ssim,
            "model_copy": True,
        }


@dataclass(frozen=True, eq=False)
class ActMaxEntry:
    """An activation maximisation run and the settings that made it."""

    model: tuple[str, str]  # (model id, weights)
    settings: dict[str, Any]
    result: sc.metrics.ActMaxResult

    def card(self) -> dict[str, Any]:
        return {"settings": self.settings} | self.result.as_dict()


class EvalStore:
    """The session's evaluations, least recently used dropped first."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple) -> Any:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def matching(self, prefix: tuple) -> Iterator[tuple[tuple, Any]]:
        """(key, value) of the entries whose key starts with `prefix`, oldest first."""
        for key, value in list(self._items.items()):
            if key[: len(prefix)] == prefix:
                yield key, value

    def __len__(self) -> int:
        return len(self._items)


def store() -> EvalStore:
    found = st.session_state.get(STORE)
    if not isinstance(found, EvalStore):
        found = st.session_state[STORE] = EvalStore()
    return found


def view_key(view: View) -> tuple:
    """Image, model, weights and target: what every evaluation of a map depends on."""
    return (*view.base_key(), view.target_key())


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return results.params_key(a) == results.params_key(b)


def no_target(view: View) -> bool:
    """Say so and return True when the model predicts nothing to explain on this image."""
    if view.target is not None:
        return False
    st.info(
        "The model predicts nothing on this image, so there is no target to evaluate: see the sidebar "
        "(a lower score threshold, another image or other weights may help).",
        icon=":material/search_off:",
    )
    return True


# --- pickers ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    label: str
    info: sc.MethodInfo
    params: dict[str, Any]


def explored_methods(view: View, ids: Sequence[str]) -> list[str]:
    """Methods this session already ran on the current image, model and target (oldest first)."""
    found: list[str] = []
    for key, result in results.store().matching(view.base_key()):
        if result.method in ids and key[3] in ((), view.target_key()) and result.method not in found:
            found.append(result.method)
    return found


def choose_methods(view: View, key: str, limit: int = 6, label: str = "Methods") -> list[Variant]:
    """A multiselect of the task's methods (first: those explored, else Grad-CAM and the gradient), each
    with the parameters last set for it on Explore."""
    infos = resources.methods(view.model.task)
    by_id = {m.id: m for m in infos}
    if not isinstance(st.session_state.get(key), list):
        explored = explored_methods(view, list(by_id))
        first = explored[-limit:] if len(explored) >= 2 else [m for m in DEFAULT_METHODS if m in by_id]
        st.session_state[key] = first
    st.session_state[key] = [m for m in st.session_state[key] if m in by_id]
    chosen = st.multiselect(
        label,
        list(by_id),
        key=key,
        format_func=lambda i: f"{by_id[i].title} ({resources.family_title(by_id[i].family)})",
        max_selections=limit,
        help="Each uses the parameters last set for it on the Explore page (defaults otherwise); maps "
        "already computed in this session are reused.",
    )
    layers = view.model.layers()
    return [Variant(by_id[m].title, by_id[m], params.values(by_id[m], layers, view)) for m in chosen]


# --- running ---------------------------------------------------------------------------------------------
def part(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """Progress of a part mapped onto [start, stop] of the whole."""
    return lambda f, message: progress(start + (stop - start) * min(1.0, max(0.0, f)), message)


def run_button(pending_key: str, key: Any, label: str = "Run", disabled: bool = False) -> None:
    st.button(
        label,
        key=f"{state.ACTION_PREFIX}{pending_key}",
        type="primary",
        icon=":material/play_arrow:",
        on_click=results.request,
        args=(pending_key, key),
        disabled=disabled,
    )


def show_cancelled() -> None:
    """Say once that the last run was cancelled (here or by a map computation)."""
    if st.session_state.pop(CANCELLED, None) or st.session_state.pop(state.CANCELLED, None):
        st.info(
            "Cancelled. What had finished is kept; press the button again to go on.",
            icon=":material/stop_circle:",
        )


def run_jobs(pending_key: str, jobs: Sequence[Job]) -> list[Any]:
    """Run metric jobs under one progress bar with a Cancel button (see ui.progress)."""
    return _run_jobs(pending_key, jobs, CANCELLED)


def map_for(view: View, variant: Variant, progress: ProgressFn) -> results.Result:
    """The variant's map: from the session's results, else computed (and stored there, as on Explore)."""
    found = results.lookup(view, variant.info, variant.params)
    return found if found is not None else results.compute(view, variant.info, variant.params, progress)
