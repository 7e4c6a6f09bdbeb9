"""The evaluations a session keeps (deletion/insertion curves, pointing games, sanity checks, activation
maximisation), and what they put into an export card's `metrics` field.

The Evaluate page computes and stores them; `metrics_for(view)` gathers what this session evaluated for the
view (image, model, weights, target), and with a `result` keeps only what concerns that map, which is how the
Explore page's card gets its metrics. Evaluations live in `st.session_state` (never recomputed when the user
switches tabs or pages), keyed by the view and the settings that produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import saliency_core as sc
from ui import results, state
from ui.results import Result
from ui.store import SessionStore, session_store
from ui.view import View

MAX_EVALUATIONS = 128


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


def store() -> SessionStore:
    """The session's evaluations, least recently used dropped first."""
    return session_store(state.EVALUATIONS, MAX_EVALUATIONS)


def view_key(view: View) -> tuple:
    """Image, model, weights and target: what every evaluation of a map depends on."""
    return (*view.base_key(), view.target_key())


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return results.params_key(a) == results.params_key(b)


# --- the card's metrics -----------------------------------------------------------------------------------
def _matches(entry: Any, result: Result | None) -> bool:
    return result is None or (entry.method == result.method and same_params(entry.params, result.params))


def metrics_for(
    view: View, result: Result | None = None, evaluations: SessionStore | None = None
) -> dict[str, Any]:
    """JSON-ready metrics of the view (of one map of it when `result` is given); {} when there are none."""
    found = evaluations if evaluations is not None else store()
    prefix = view_key(view)
    curves, sanity = [], []
    used_settings = set()
    for key, entry in found.matching(("curve", *prefix)):
        if isinstance(entry, CurveEntry) and entry.method != "random" and _matches(entry, result):
            curves.append(entry.card())
            used_settings.add(key[-2:])  # (steps, substrate)
    for key, entry in found.matching(("curve", *prefix)):
        if isinstance(entry, CurveEntry) and entry.method == "random" and key[-2:] in used_settings:
            curves.append(entry.card())
    pointing = found.get(("pointing", *prefix))
    if isinstance(pointing, PointingEntry):
        rows = [r for r in pointing.rows if _matches(r, result)]
        pointing = pointing.card(rows) if rows else None
    for _, entry in found.matching(("sanity", *prefix)):
        if isinstance(entry, SanityEntry) and _matches(entry, result):
            sanity.append(entry.card())
    actmax = None
    if result is None:
        runs = [
            e
            for k, e in found.matching(("actmax", view.info.id, view.weights))
            if k[3] in (None, view.image.digest)  # from noise, or from this image
        ]
        actmax = [e.card() for e in runs if isinstance(e, ActMaxEntry)] or None
    return sc.metrics.card_metrics(
        faithfulness=curves or None,
        pointing=pointing,
        sanity=sanity or None,
        activation_maximization=actmax,
    )
