"""`explain` over many images: per image and method the raw map (.npz), an overlay PNG and a JSON card,
under OUT/<image stem>/<method>.{npz,png,json}, and OUT/summary.json listing everything.

A bad image is reported on stderr with its message and skipped; the others continue. The exit code says
how it went: 0 all fine, 2 something skipped, 1 nothing done.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import viz
from ..engine import get_engine
from ..errors import InvalidParameter, SaliencyError, UnknownMethod
from ..io import load_image
from ..methods import MethodInfo, list_methods
from ..metrics.card import card_metrics
from ..metrics.deletion_insertion import SUBSTRATES, deletion, insertion
from ..metrics.pointing import energy_pointing, pointing_game
from ..models import LoadedModel
from ..targets import ClassTarget, Target
from ..viz.maps import SIGNS
from .card import card
from .masks import aligned_mask
from .metrics import method_params
from .progress import ImageProgress
from .sources import MASK_TAG, ImageSource, expand_sources

CARD_METRICS = ("deletion", "insertion", "pointing", "energy_pointing")


@dataclass
class ExplainOptions:
    """What to compute for each image (the CLI's explain arguments)."""

    methods: Sequence[str] = ("gradcam",)
    target: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    cmap: str = "inferno"
    metrics: Sequence[str] = ()
    steps: int = 50
    substrate: str = "blur"


def parse_metrics(text: str | None) -> list[str]:
    """`deletion,insertion,pointing` -> names, checked (energy_pointing too; `energy` is its short name)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    names = ["energy_pointing" if n == "energy" else n for n in names]
    unknown = [n for n in names if n not in CARD_METRICS]
    if unknown:
        raise InvalidParameter(f"Unknown metric {unknown[0]!r}; choose from {', '.join(CARD_METRICS)}.")
    return names


def check_methods(methods: Sequence[str]) -> dict[str, MethodInfo]:
    """The MethodInfo of each id, or UnknownMethod naming the first unknown one."""
    infos = {m.id: m for m in list_methods()}
    for method in methods:
        if method not in infos:
            raise UnknownMethod(f"Unknown method {method!r} (see `methods`).")
    return {m: infos[m] for m in methods}


def _card_metrics(
    model: LoadedModel, x: Any, target: Target, sal: Any, mask: np.ndarray | None, why: str, o: ExplainOptions
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "deletion" in o.metrics:
        found["deletion"] = deletion(model, x, target, sal, steps=o.steps, substrate=o.substrate)
    if "insertion" in o.metrics:
        found["insertion"] = insertion(model, x, target, sal, steps=o.steps, substrate=o.substrate)
    out = card_metrics(**found)
    for name, fn in (("pointing", pointing_game), ("energy_pointing", energy_pointing)):
        if name in o.metrics:
            out[name] = fn(sal, mask) if mask is not None else {"skipped": why}
    return out


def explain_image(
    model: LoadedModel, weights: str, source: ImageSource, out: Path, o: ExplainOptions, errors: IO[str]
) -> dict[str, Any]:
    """Maps, overlays and cards of one image; its summary entry. Raises SaliencyError for a bad image
    (nothing of it is written then); a method that fails on it is reported and the others continue."""
    image = load_image(source.path)  # checks the file's size and decodes safely before anything is read
    data = source.path.read_bytes()
    infos = check_methods(o.methods)
    x = model.preprocess(image)
    picture = model.to_image(x)
    predictions = model.predict(x, top_k=5)
    if o.target is not None:
        names = model.categories
        target: Target = ClassTarget(o.target, label=names[o.target] if 0 <= o.target < len(names) else "")
    elif predictions:
        target = predictions[0]
    else:
        raise InvalidParameter("The model predicts nothing on this image; pass --target.")
    mask = None
    why = (
        f"no mask: pass --masks DIR with a file of the image's stem, or put {source.path.stem}{MASK_TAG}.png "
        "beside the image (a bundled scene has its own)"
    )
    if source.mask_path is not None and any(m in o.metrics for m in ("pointing", "energy_pointing")):
        mask = aligned_mask(model, source.mask_path, image.size)
    folder = out / source.stem
    folder.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(data).hexdigest()
    entry: dict[str, Any] = {
        "stem": source.stem,
        "source": str(source.path),
        "image_sha256": sha,
        "predictions": [{"label": p.label, "score": p.score} for p in predictions],
        "results": [],
        "errors": [],
    }
    for method, info in infos.items():
        try:
            a = model.engine.attribute(
                model, x, method, target if info.needs_target else None, **method_params(info, o.params)
            )
            metrics = _card_metrics(model, x, target, a.map, mask, why, o) if o.metrics else {}
        except SaliencyError as exc:
            print(f"{source.stem}: {method} skipped: {exc}", file=errors)
            entry["errors"].append({"method": method, "error": str(exc)})
            continue
        base = folder / method
        np.savez_compressed(base.with_suffix(".npz"), map=a.map.numpy(), raw=a.raw.numpy())
        sign = info.sign if info.sign in SIGNS else "positive"
        shown = viz.overlay(picture, viz.normalise(a.map, sign=sign), o.cmap, 0.5)
        base.with_suffix(".png").write_bytes(viz.png_bytes(shown))
        content = card(
            source, sha, image, picture, model, weights, a, info, sign, target, predictions, metrics
        )
        base.with_suffix(".json").write_text(json.dumps(content, indent=2, ensure_ascii=False, default=str))
        entry["results"].append(
            {
                "method": method,
                "params": a.params,
                "target": a.target.describe() if a.target is not None else None,
                "seconds": round(a.seconds, 4),
                "forward_passes": a.forward_passes,
                "backward_passes": a.backward_passes,
                "png": str(base.with_suffix(".png")),
                "npz": str(base.with_suffix(".npz")),
                "card": str(base.with_suffix(".json")),
                **({"metrics": metrics} if metrics else {}),
            }
        )
    return entry


def explain_batch(
    sources: Sequence[str],
    model: LoadedModel,
    weights: str,
    out: Path,
    options: ExplainOptions,
    *,
    masks: str | None = None,
    recursive: bool = False,
    errors: IO[str] | None = None,
) -> tuple[dict[str, Any], int]:
    """Explain every image of `sources`; (summary, exit code: 0 all fine, 2 some skipped, 1 nothing done)."""
    errors = errors if errors is not None else sys.stderr
    check_methods(options.methods)
    if options.substrate not in SUBSTRATES:
        raise InvalidParameter(
            f"Unknown substrate {options.substrate!r}; choose from {', '.join(SUBSTRATES)}."
        )
    images, problems = expand_sources(sources, recursive=recursive, masks=masks)
    skipped = [{"source": s, "error": msg} for s, msg in problems]
    for s, msg in problems:
        print(f"skipped {s}: {msg}", file=errors)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    bar = ImageProgress(len(images), stream=errors)
    for source in images:
        try:
            entries.append(explain_image(model, weights, source, out, options, errors))
        except SaliencyError as exc:
            print(f"skipped {source.path}: {exc}", file=errors)
            skipped.append({"source": str(source.path), "error": str(exc)})
        except OSError as exc:  # e.g. a file removed or unreadable after the listing
            print(f"skipped {source.path}: the file cannot be read ({exc.strerror or exc}).", file=errors)
            skipped.append({"source": str(source.path), "error": str(exc)})
        bar.update(source.stem)
    bar.close()
    summary = {
        "model": model.id,
        "weights": weights,
        "images": entries,
        "skipped": skipped,
        "device": get_engine().describe_device(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    done = sum(1 for e in entries if e["results"])
    failed = bool(skipped) or any(e["errors"] for e in entries)
    code = 1 if done == 0 else (2 if failed else 0)
    return summary, code
