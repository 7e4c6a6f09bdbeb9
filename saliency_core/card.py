"""The JSON card of maps (schema `saliency-dashboard/card-1`): how each map was made, of which image, by which
model and for which target, with the library versions. One builder for the app's exports (ui/export.py) and
the batch CLI (dataset/batch_explain.py): each caller describes its maps as `MapRecord`s and passes what only
it knows (the page, the display settings, where the weights came from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np

from .engine import Attribution
from .errors import SaliencyError
from .models import LoadedModel
from .targets import Target

CARD_SCHEMA = "saliency-dashboard/card-1"
PACKAGES = ("torch", "torchvision", "streamlit", "numpy", "plotly", "opencv-contrib-python-headless")
IGNORED_TARGET = "(none: the method ignores the target)"  # a map's target label when its method takes none


@lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    from . import __version__

    out = [("saliency_core", __version__)]
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (read once per process; the caller's own dict)."""
    return dict(_versions())


def json_value(value: Any) -> Any:
    """A parameter, seed, score or source value as JSON: numpy scalars as numbers, other objects as text."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def mode_text(extras: Mapping[str, Any]) -> str:
    """How a method with modes made a map ("exact, incremental", "adaptive (approximate): 88 of 625
    windows", "progressive"), from what it recorded in its extras; "" for methods without modes."""
    mode = extras.get("mode")
    if not mode:
        return ""
    text = str(mode)
    done, total = extras.get("windows"), extras.get("windows_total")
    if mode == "adaptive":
        text = "adaptive (approximate)" + (f": {done} of {total} windows" if total else "")
    if extras.get("incremental"):
        text += ", incremental"
    return text


@dataclass(frozen=True)
class MapRecord:
    """What a card says of one map. `sign` is the sign the map is displayed with; `target_index` the
    position of its target among the model's listed predictions (None where the method takes no target)."""

    method: str
    title: str
    family: str
    params: Mapping[str, Any]
    target_index: int | None
    target_label: str
    seconds: float
    compute_seconds: float
    from_cache: bool
    forward_passes: int
    backward_passes: int
    device: str
    shape: tuple[int, ...]
    raw_shape: tuple[int, ...]
    minimum: float
    maximum: float
    sign: str
    extras: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    label: str | None = None  # the map's name in the card (default: the method's title)

    @classmethod
    def of(
        cls,
        a: Attribution,
        *,
        title: str,
        family: str,
        sign: str,
        target_index: int | None,
        target_label: str,
        label: str | None = None,
    ) -> MapRecord:
        """The record of an Attribution (`target_label` IGNORED_TARGET where its method takes none)."""
        return cls(
            method=a.method,
            title=title,
            family=family,
            params=dict(a.params),
            target_index=target_index,
            target_label=target_label,
            seconds=float(a.seconds),
            compute_seconds=float(a.compute_seconds),
            from_cache=bool(a.cached),
            forward_passes=int(a.forward_passes),
            backward_passes=int(a.backward_passes),
            device=str(a.device),
            shape=tuple(a.map.shape),
            raw_shape=tuple(a.raw.shape),
            minimum=float(a.map.min()),
            maximum=float(a.map.max()),
            sign=sign,
            extras=dict(a.extras),
            notes=tuple(a.notes),
            label=label,
        )

    @property
    def seed(self) -> Any:
        return json_value(self.params.get("seed"))

    def entry(self) -> dict[str, Any]:
        """The map's entry in the card's `maps`."""
        return {
            "label": self.label or self.title,
            "method": self.method,
            "title": self.title,
            "family": self.family,
            "params": {k: json_value(v) for k, v in self.params.items()},
            "seed": self.seed,
            "target": {"index": self.target_index, "label": self.target_label},
            "timings": {
                "seconds": round(self.seconds, 4),
                "compute_seconds": round(self.compute_seconds, 4),
                "from_cache": self.from_cache,
            },
            "passes": {"forward": self.forward_passes, "backward": self.backward_passes},
            "device": self.device,
            "mode": mode_text(self.extras) or None,  # e.g. exact or adaptive (approximate) occlusion
            "notes": list(self.notes),
            "map": {
                "shape": list(self.shape),
                "raw_shape": list(self.raw_shape),
                "min": self.minimum,
                "max": self.maximum,
                "display_sign": self.sign,
            },
        }


def image_fields(
    *,
    sha256: str,
    name: str,
    source: str,
    sample_id: str | None,
    size: tuple[int, int],
    input_size: tuple[int, ...],
    path: str | None = None,
) -> dict[str, Any]:
    """The card's `image`: `source` says how the image came ("sample", "upload", "camera", "file"), `size`
    is (width, height), `input_size` the model input's (height, width); `path` a file's, where there is one."""
    out: dict[str, Any] = {
        "sha256": sha256,
        "name": name,
        "source": source,
        "sample_id": sample_id,
        "size": list(size),
        "input_size": list(input_size),
    }
    if path is not None:
        out["path"] = path
    return out


def target_fields(
    target: Target | None, index: int | None, label: str | None = None, **details: Any
) -> dict[str, Any]:
    """The card's `target`: its position `index` among the model's listed predictions, its label, score
    and class index, where it is (a detection's box and class, a keypoint), then the caller's `details`
    (a region, a threshold)."""
    out: dict[str, Any] = {
        "index": index,
        "label": label if label is not None else (target.describe() if target is not None else "(no target)"),
        "score": json_value(getattr(target, "score", None)),
        "class_index": json_value(getattr(target, "index", None)),
    }
    box = getattr(target, "box", None) if target is not None else None
    if box is not None:
        out["box"] = [round(float(v), 2) for v in box]
    if target is not None and getattr(target, "category", None) is not None:
        out["category"] = int(target.category)
    if target is not None and getattr(target, "keypoint_name", None):
        out["keypoint"] = target.keypoint_name
        location = getattr(target, "location", None)
        out["keypoint_location"] = [round(float(v), 2) for v in location] if location else None
    out.update({k: v for k, v in details.items() if v is not None})
    return out


def weights_label(weights: str | None, model: LoadedModel) -> str:
    """The card's `model.weights` for weights given as the library takes them: "default", "random" (None,
    "none" or "random"), or "file:<sha256 prefix>" for a weights file."""
    if weights in (None, "none", "random"):
        return "random"
    if weights == "default":
        return "default"
    digest = str(model.source_info().get("weights_sha256") or "")
    return f"file:{digest[:16]}" if digest else "file"


def weights_file(model: LoadedModel, weights: str | None) -> str | None:
    """The card's `model.weights_file` for weights given as the library takes them: the catalogue's file
    for "default", the path of a weights file, None for random weights."""
    if weights in (None, "none", "random"):
        return None
    if weights == "default":
        from .models.sources import model_info

        try:
            return model_info(model.id).weights_path
        except SaliencyError:  # a plain module: no catalogue entry
            return None
    return str(weights)


def card(
    maps: Sequence[MapRecord],
    *,
    image: dict[str, Any],
    model: LoadedModel,
    weights: str,
    weights_file: str | None,
    target: dict[str, Any],
    page: str,
    display: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of `maps` (one or more) of one image: `image` and `target` as `image_fields` and
    `target_fields` make them, `weights` as the model's key ("default", "random", "file:<digest prefix>"),
    `page` who made it ("explore", "compare", "evaluate", "cli"), `display` the display settings where the
    maps were drawn with them, `metrics` JSON-ready values (metrics.card.card_metrics)."""
    entries = [m.entry() for m in maps]
    single = len(entries) == 1
    first = entries[0] if entries else None
    out: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "page": page,
        "image": image,
        "model": {
            "id": model.id,
            "title": model.title,
            "task": model.task,
            "weights": weights,
            "weights_file": weights_file,
            # Where the model came from: the catalogue, a plugin, timm or torchvision, with the weights
            # file's and class-names file's hashes.
            "source": {k: json_value(v) for k, v in model.source_info().items()},
        },
        "target": target,
        "method": (
            {"id": first["method"], "title": first["title"], "params": first["params"]}
            if single and first is not None
            else [{"id": e["method"], "label": e["label"], "params": e["params"]} for e in entries]
        ),
        "seed": first["seed"] if single and first is not None else {e["label"]: e["seed"] for e in entries},
        "timings": {
            "seconds": round(sum(m.seconds for m in maps), 4),
            "compute_seconds": round(sum(m.compute_seconds for m in maps), 4),
        },
        "passes": {
            "forward": sum(m.forward_passes for m in maps),
            "backward": sum(m.backward_passes for m in maps),
        },
        "maps": entries,
    }
    if display is not None:
        out["display"] = dict(display)
    out["versions"] = versions()
    out["metrics"] = dict(metrics or {})
    return out
