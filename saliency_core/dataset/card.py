"""The JSON card of one map made by a batch command: the fields of the app's export card (ui/export.py
`card()`), built from an Attribution instead of the app's view, so cards from the app and the CLI read alike."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import numpy as np
from PIL import Image

from ..engine import Attribution
from ..metrics.card import to_jsonable
from ..models import LoadedModel
from .sources import ImageSource

CARD_SCHEMA = "saliency-dashboard/card-1"  # the app's schema: same fields
PACKAGES = ("torch", "torchvision", "streamlit", "numpy", "plotly", "opencv-contrib-python-headless")


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (as the app's card lists them)."""
    from .. import __version__

    out = {"saliency_core": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _weights_file(model_id: str, weights: str) -> str | None:
    if weights == "none":
        return None
    if weights == "default":
        from ..models.sources import model_info

        return model_info(model_id).weights_path or None
    return str(weights)


def _target(a: Attribution) -> dict[str, Any]:
    t = a.target
    if t is None:
        return {"index": None, "label": None, "score": None, "class_index": None}
    index = getattr(t, "index", None)
    out = {
        "index": to_jsonable(index),
        "label": t.describe(),
        "score": to_jsonable(getattr(t, "score", None)),
        "class_index": to_jsonable(index),
    }
    box = getattr(t, "box", None)
    if box is not None:
        out["box"] = [round(float(v), 2) for v in box]
    return out


def card(
    source: ImageSource,
    sha256: str,
    image: Image.Image,
    picture: np.ndarray,
    model: LoadedModel,
    weights: str,
    a: Attribution,
    title: str,
    sign: str,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of map `a` of `image` (the file's bytes hash to `sha256`; `picture` is the model's input)."""
    params = to_jsonable(
        {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in a.params.items()}
    )
    target = _target(a)
    entry = {
        "label": title,
        "method": a.method,
        "title": title,
        "params": params,
        "seed": to_jsonable(a.params.get("seed")),
        "target": {"index": target["index"], "label": target["label"]},
        "timings": {
            "seconds": round(a.seconds, 4),
            "compute_seconds": round(a.compute_seconds, 4),
            "from_cache": a.cached,
        },
        "passes": {"forward": a.forward_passes, "backward": a.backward_passes},
        "device": a.device,
        "mode": a.extras.get("mode") or None,
        "notes": list(a.notes),
        "map": {
            "shape": list(a.map.shape),
            "raw_shape": list(a.raw.shape),
            "min": float(a.map.min()),
            "max": float(a.map.max()),
            "display_sign": sign,
        },
    }
    return {
        "schema": CARD_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "page": "cli",
        "image": {
            "sha256": sha256,
            "name": source.name,
            "source": str(source.path),
            "sample_id": source.sample.id if source.sample is not None else None,
            "size": list(image.size),
            "input_size": list(picture.shape[:2]),
        },
        "model": {
            "id": model.id,
            "title": model.title,
            "task": model.task,
            "weights": weights,
            "weights_file": _weights_file(model.id, weights),
            "source": to_jsonable(
                {k: str(v) if not isinstance(v, (int, float)) else v for k, v in model.source_info().items()}
            ),
        },
        "target": target,
        "method": {"id": a.method, "title": title, "params": params},
        "seed": entry["seed"],
        "timings": {
            "seconds": entry["timings"]["seconds"],
            "compute_seconds": entry["timings"]["compute_seconds"],
        },
        "passes": entry["passes"],
        "maps": [entry],
        "versions": versions(),
        "metrics": metrics or {},
    }
