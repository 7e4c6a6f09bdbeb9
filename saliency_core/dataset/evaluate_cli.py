"""`python -m saliency_core evaluate`: the arguments, the run and what it writes and prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidParameter
from ..metrics.deletion_insertion import SUBSTRATES
from .batch_explain import check_methods
from .evaluate import all_methods, evaluate_items, per_image_frame
from .items import file_items, scene_items
from .progress import ImageProgress
from .sources import MASKS_RULE, expand_sources
from .store import Settings, weights_sha256
from .summary import summarise, table_text, write_tables

# Generated scenes of `--scenes N` start here: held out from training and from the report's range.
SCENE_SEED_START = 1_000_000 + 800_000


def add_parser(sub: Any, parse_param: Any) -> None:
    """The `evaluate` subcommand's arguments."""
    p = sub.add_parser(
        "evaluate",
        help="metrics of methods over a folder of images or generated scenes",
        description="Metrics of methods over a folder of images or generated scenes.",
        epilog=MASKS_RULE,
    )
    p.add_argument("--model", default="shapes_demo", help="model id (default: the bundled demo model)")
    p.add_argument("--weights", default="default", help="'default', 'none' (random init) or a weights file")
    p.add_argument("--methods", required=True, help="comma-separated method ids, e.g. gradcam,gradient")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--images", help="folder of images (or a glob), evaluated against --masks or masks beside them"
    )
    group.add_argument(
        "--scenes", type=int, help="N generated scenes with exact masks (needs a shapes model)"
    )
    p.add_argument(
        "--masks",
        help="folder of masks named like the images (pointing, energy pointing; default: masks beside them)",
    )
    p.add_argument("--recursive", action="store_true", help="also images in sub-folders of --images")
    p.add_argument(
        "--target", type=int, default=None, help="class index for every image (default: top class)"
    )
    p.add_argument(
        "--param", action="append", type=parse_param, default=[], help="method parameter NAME=VALUE"
    )
    p.add_argument("--out", required=True, help="output folder (re-running on it resumes)")
    p.add_argument("--steps", type=int, default=50, help="deletion / insertion steps")
    p.add_argument("--substrate", default="blur", choices=list(SUBSTRATES))
    p.add_argument("--sanity", action="store_true", help="also cascading randomisation (slow)")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="in-process, or Ray Data")
    p.add_argument("--address", default=None, help="Ray cluster: 'auto', 'ray://host:10001' (default: local)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the tables, print the summary; exit code 0, 2 (images skipped) or 1 (nothing)."""
    import saliency_core as sc

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise InvalidParameter("--methods names no method.")
    check_methods([m for m in methods if m != "random"])
    if args.address and args.engine != "ray":
        raise InvalidParameter("--address names a Ray cluster: add --engine ray.")
    if args.steps < 2:
        raise InvalidParameter("--steps must be at least 2.")
    sc.limits().check("max_metric_steps", args.steps, "--steps")
    problems: list[tuple[str, str]] = []
    if args.scenes is not None:
        if args.scenes < 1:
            raise InvalidParameter("--scenes must be at least 1.")
        items = scene_items(range(SCENE_SEED_START, SCENE_SEED_START + args.scenes))
    else:
        sources, problems = expand_sources([args.images], recursive=args.recursive, masks=args.masks)
        items, unreadable = file_items(sources)
        problems += unreadable
    for name, msg in problems:
        print(f"skipped {name}: {msg}", file=sys.stderr)
    weights = "none" if args.weights.lower() == "none" else args.weights
    model = sc.load_model(args.model, weights=None if weights == "none" else weights)
    settings = Settings(
        model=args.model,
        weights=weights,
        weights_sha256=weights_sha256(args.model, weights, model.source_info()),
        steps=args.steps,
        substrate=args.substrate,
        sanity=args.sanity,
        params=tuple(sorted(args.param)),
        target=args.target,
    )
    out = Path(args.out)
    bar = ImageProgress(len(items))
    outcome = evaluate_items(
        model,
        items,
        methods,
        settings,
        out,
        progress=lambda done, total, name: bar.set(done, name),
        engine=args.engine,
        address=args.address,
        num_cpus=args.num_cpus,
    )
    bar.close()
    for name, msg in outcome.skipped:
        print(f"skipped {name}: {msg}", file=sys.stderr)
    per_image = per_image_frame(outcome.rows, settings)
    if per_image.empty:
        print("Nothing was evaluated.", file=sys.stderr)
        return 1
    summary = summarise(per_image)
    meta = {"settings": settings.as_dict(), "methods_asked": all_methods(methods), "images": len(items)}
    write_tables(out, per_image, summary, meta)
    print(table_text(summary))
    print(
        f"\n{len(items)} images, {outcome.computed} maps computed now ({args.engine}, "
        f"{outcome.seconds:.1f} s); tables in {out}",
        file=sys.stderr,
    )
    return 2 if (problems or outcome.skipped) else 0
