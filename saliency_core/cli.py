"""Command line: `python -m saliency_core models | methods | samples | explain SRC ... | evaluate ...`.

`explain` takes files, folders, globs and sample ids and writes, per image and method, the raw map (.npz),
an overlay PNG and a JSON card (saliency_core.dataset.batch_explain); `evaluate` measures methods over a
folder or generated scenes (saliency_core.dataset.evaluate_cli). See docs/datasets.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import saliency_core as sc
from saliency_core.dataset import batch_explain, evaluate_cli
from saliency_core.dataset.sources import MASKS_RULE


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
    explain = sub.add_parser(
        "explain",
        help="saliency maps of images: files, folders, globs, sample ids",
        description="Saliency maps of images: files, folders, globs, sample ids.",
        epilog=MASKS_RULE,
    )
    explain.add_argument(
        "sources", nargs="+", metavar="SRC", help="image file, folder, quoted glob or bundled sample id"
    )
    explain.add_argument("--recursive", action="store_true", help="also images in sub-folders")
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
    explain.add_argument(
        "--metrics", default="", help="add to each card: deletion,insertion,pointing,energy_pointing"
    )
    explain.add_argument(
        "--masks",
        default=None,
        help="folder of ground-truth masks named like the images (default: a mask beside each image)",
    )
    explain.add_argument("--steps", type=int, default=50, help="deletion / insertion steps")
    explain.add_argument("--substrate", default="blur", help="deletion / insertion substrate")
    evaluate_cli.add_parser(sub, _parse_param)
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


def explain(args: argparse.Namespace) -> tuple[dict, int]:
    """Compute the requested maps of every source and write them to args.out; (summary, exit code)."""
    options = batch_explain.ExplainOptions(
        methods=args.method or ["gradcam"],
        target=args.target,
        params=dict(args.param),
        cmap=args.cmap,
        metrics=batch_explain.parse_metrics(args.metrics),
        steps=args.steps,
        substrate=args.substrate,
    )
    batch_explain.check_methods(options.methods)  # before the model loads: a typo fails fast
    weights = None if args.weights.lower() == "none" else args.weights
    model = sc.load_model(args.model, weights=weights)
    return batch_explain.explain_batch(
        args.sources,
        model,
        args.weights,
        Path(args.out),
        options,
        masks=args.masks,
        recursive=args.recursive,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "models":
            _print_models()
        elif args.command == "methods":
            _print_methods()
        elif args.command == "samples":
            _print_samples()
        elif args.command == "evaluate":
            return evaluate_cli.run(args)
        else:
            summary, code = explain(args)
            print(json.dumps(summary, indent=2, default=str))
            return code
    except sc.SaliencyError as exc:  # before any image was done: bad arguments, model or weights
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
