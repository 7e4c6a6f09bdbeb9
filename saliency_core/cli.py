"""Command line: `python -m saliency_core models | methods | samples | explain IMAGE ...`.

`explain` writes one overlay PNG per method, the raw maps as .npz and a JSON summary, using only
the public contract, so it doubles as a worked example of the library.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import saliency_core as sc
from saliency_core import viz


def _parse_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"Expected NAME=VALUE, got {text!r}.")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m saliency_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="registered models, their task and whether weights are on disk")
    sub.add_parser("methods", help="attribution methods and their parameters")
    sub.add_parser("samples", help="bundled sample images")
    explain = sub.add_parser("explain", help="saliency maps of one image")
    explain.add_argument("image", help="image file, or a bundled sample id (see `samples`)")
    explain.add_argument("--model", default="shapes_demo", help="model id (default: the bundled demo model)")
    explain.add_argument(
        "--weights", default="default", help="'default', 'none' (random init) or a .safetensors/.pth file"
    )
    explain.add_argument("--method", action="append", help="method id; repeat for several (default: gradcam)")
    explain.add_argument("--target", type=int, default=None, help="class index (default: the top prediction)")
    explain.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        default=[],
        help="method parameter NAME=VALUE (repeatable)",
    )
    explain.add_argument("--out", default="saliency_out", help="output folder (default: ./saliency_out)")
    explain.add_argument("--cmap", default="inferno", help="colormap of the overlays")
    return parser


def _print_models() -> None:
    for m in sc.list_models():
        weights = "weights on disk" if m.weights_available else f"weights missing: {m.weights_path}"
        print(f"{m.id:34s} {m.task:15s} {weights}")


def _print_methods() -> None:
    for m in sc.list_methods():
        params = ", ".join(f"{p['name']}={p['default']}" for p in m.params) or "-"
        print(f"{m.id:22s} {m.family:13s} {params}")


def _print_samples() -> None:
    for s in sc.list_samples():
        print(f"{s.id:28s} {s.kind:10s} {s.suggested_model:34s} {s.title}")


def _load_source(source: str) -> tuple[Any, bytes]:
    path = Path(source)
    if not path.exists():
        by_id = {s.id: s for s in sc.list_samples()}
        if source not in by_id:
            raise sc.InvalidImage(f"No file {source!r} and no bundled sample with that id (see `samples`).")
        path = by_id[source].path
    data = path.read_bytes()
    return sc.load_image(data), data


def explain(args: argparse.Namespace) -> dict[str, Any]:
    """Compute the requested maps and write them to args.out; returns the JSON summary."""
    image, data = _load_source(args.image)
    weights = None if args.weights.lower() == "none" else args.weights
    model = sc.load_model(args.model, weights=weights)
    x = model.preprocess(image)
    picture = model.to_image(x)
    predictions = model.predict(x, top_k=5)
    target = args.target
    if target is None:
        if not predictions:
            raise sc.InvalidParameter("The model predicts nothing on this image; pass --target.")
        target = predictions[0]
    params = dict(args.param)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    maps: dict[str, np.ndarray] = {}
    for method in args.method or ["gradcam"]:
        spec = next((m for m in sc.list_methods() if m.id == method), None)
        if spec is None:
            raise sc.UnknownMethod(f"Unknown method {method!r} (see `methods`).")
        own = {k: v for k, v in params.items() if any(p["name"] == k for p in spec.params)}
        a = sc.attribute(model, x, method, target if spec.needs_target else None, **own)
        maps[method] = a.map.numpy()
        png = out / f"{method}.png"
        png.write_bytes(viz.png_bytes(viz.overlay(picture, viz.normalise(a.map), args.cmap, 0.5)))
        results.append(
            {
                "method": method,
                "params": a.params,
                "target": a.target.describe() if a.target is not None else None,
                "seconds": round(a.seconds, 4),
                "forward_passes": a.forward_passes,
                "backward_passes": a.backward_passes,
                "png": str(png),
            }
        )
    np.savez_compressed(out / "maps.npz", **maps)
    summary = {
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "model": args.model,
        "weights": args.weights,
        "predictions": [{"label": p.label, "score": p.score} for p in predictions],
        "results": results,
        "device": sc.get_engine().describe_device(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            _print_models()
        elif args.command == "methods":
            _print_methods()
        elif args.command == "samples":
            _print_samples()
        else:
            print(json.dumps(explain(args), indent=2, default=str))
    except sc.SaliencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
