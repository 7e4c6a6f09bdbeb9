"""Metrics of every attribution method on a demo model over held-out scenes, as a Markdown table.

``python -m saliency_core.metrics.report [--model shapes_demo] [--scenes 50] [--out docs/metrics_demo.md]
[--steps 50] [--substrate blur] [--methods gradcam,rise] [--start SEED] [--weights default]
[--sanity-scenes 10]``

The model is one trained on the synthetic scenes: the bundled CNN (`shapes_demo`, every method that can
explain it) or the bundled ViT (`shapes_vit_demo`, for the transformer-attention methods among others).

Each method explains the scene's true class (methods without a target get none). Deletion and insertion
AUCs use the softmax probability of the true class; the pointing game (15 px) and energy pointing use the
scene's exact object mask. The sanity column is the Spearman similarity of |map| to the original after
cascading randomisation of every block (Adebayo et al. 2018) on the first `--sanity-scenes` scenes: a map
that stays similar when the model's weights are destroyed does not explain the model. The random row is a
uniformly random map. Seconds are per map, cold (the engine's cache is cleared before each map), on this
machine's CPU/GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import saliency_core as sc
from saliency_core.dataset.metrics import RANDOM, image_rows  # per-image metrics, shared with `evaluate`
from saliency_core.samples import assets_dir
from saliency_core.zoo import HELDOUT_SEED_START
from saliency_core.zoo.scenes import make_scene

# Held-out scenes for this report: never trained on, and apart from the ranges the training script
# (HELDOUT_SEED_START ..), the demo-model tests (+500_000 ..) and the metric tests (+600_000 ..) use.
REPORT_SEED_START = HELDOUT_SEED_START + 700_000


@dataclass
class Row:
    """Means over scenes for one method."""

    method: str
    title: str
    deletion: float
    insertion: float
    pointing: float
    energy: float
    seconds: float | None
    scenes: int
    sanity: float | None = None


def evaluate(
    model: sc.LoadedModel,
    seeds: Sequence[int],
    methods: Sequence[str],
    steps: int = 50,
    substrate: str = "blur",
    log: Callable[[str], None] | None = None,
    sanity_scenes: int = 0,
) -> list[Row]:
    """One row per method, plus the random-map row, averaged over the scenes of `seeds` (the sanity
    check over the first `sanity_scenes` of them)."""
    infos = {m.id: m for m in sc.list_methods()}
    values: dict[str, list[tuple[float, float, float, float, float]]] = {m: [] for m in [*methods, RANDOM]}
    sanity: dict[str, list[float]] = {m: [] for m in methods}
    for k, seed in enumerate(seeds):
        scene = make_scene(seed)
        x = model.preprocess(scene.image)
        target = sc.ClassTarget(scene.label, label=scene.name)
        rows = image_rows(
            model,
            x,
            target,
            scene.mask,
            [*methods, RANDOM],
            seed=seed,
            steps=steps,
            substrate=substrate,
            sanity=k < sanity_scenes,
        )
        for r in rows:
            values[r["method"]].append(
                (r["deletion"], r["insertion"], r["pointing"], r["energy_pointing"], r["seconds"])
            )
            if k < sanity_scenes and r["method"] != RANDOM:
                sanity[r["method"]].append(r["sanity"])
        if log is not None:
            log(f"scene {k + 1}/{len(seeds)} (seed {seed}) done")
    rows = []
    for method, vals in values.items():
        arr = np.array(vals, dtype=np.float64)
        title = infos[method].title if method in infos else "Random map (baseline)"
        seconds = None if method == RANDOM else float(arr[:, 4].mean())
        checked = sanity.get(method)
        row_sanity = float(np.mean(checked)) if checked else None
        rows.append(
            Row(method, title, *(float(v) for v in arr[:, :4].mean(0)), seconds, len(vals), row_sanity)
        )
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """The table: one line per method."""
    lines = [
        "| Method | Deletion AUC ↓ | Insertion AUC ↑ | Pointing game ↑ | Energy pointing ↑ "
        "| Sanity: similarity after randomisation ↓ | Seconds / map |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        seconds = "—" if r.seconds is None else f"{r.seconds:.3f}"
        sanity = "—" if r.sanity is None else f"{r.sanity:.2f}"
        lines.append(
            f"| {r.title} (`{r.method}`) | {r.deletion:.3f} | {r.insertion:.3f} | {r.pointing:.2f} "
            f"| {r.energy:.3f} | {sanity} | {seconds} |"
        )
    return "\n".join(lines)


def weights_digest(weights: str, model_id: str = "shapes_demo") -> str:
    """First 12 hex digits of the weights file's SHA-256 ("random" for random init)."""
    if weights == "random":
        return "random"
    path = assets_dir() / f"{model_id}.safetensors" if weights == "default" else Path(weights)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes_demo", help="a demo model trained on the scenes")
    p.add_argument("--scenes", type=int, default=50, help="number of held-out scenes")
    p.add_argument("--start", type=int, default=REPORT_SEED_START, help="first scene seed")
    p.add_argument("--steps", type=int, default=50, help="deletion/insertion steps")
    p.add_argument("--substrate", default="blur", choices=list(sc.metrics.SUBSTRATES))
    p.add_argument(
        "--methods", default="", help="comma-separated method ids (default: all that explain the model)"
    )
    p.add_argument("--weights", default="default", help='"default" (bundled), "random" or a weights file')
    p.add_argument("--out", type=Path, default=None, help="also write the table (Markdown) here")
    p.add_argument(
        "--sanity-scenes",
        type=int,
        default=10,
        help="scenes for the cascading-randomisation column (0: skip)",
    )
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    digest = weights_digest(args.weights, args.model)  # before loading: the file may change during the run
    model = sc.load_model(args.model, weights=None if args.weights == "random" else args.weights)
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = chosen or [m.id for m in sc.list_methods(model=model)]
    seeds = list(range(args.start, args.start + args.scenes))
    began = time.perf_counter()
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rows = evaluate(
        model, seeds, methods, args.steps, args.substrate, log, min(args.sanity_scenes, len(seeds))
    )
    if weights_digest(args.weights, args.model) != digest:
        print("The weights file changed during the run; run again.", file=sys.stderr)
        return 1
    table = markdown(rows)
    note = (
        f"Demo model `{args.model}` (weights: {args.weights}, sha256 {digest}), "
        f"{len(seeds)} held-out scenes "
        f"(seeds {seeds[0]}..{seeds[-1]}), {args.steps} steps, {args.substrate} substrate, "
        f"sanity over the first {min(args.sanity_scenes, len(seeds))}; "
        f"torch {torch.__version__} on {model.engine.describe_device()} ({platform.machine()}); "
        f"{time.perf_counter() - began:.0f} s in all."
    )
    print(table + "\n\n" + note)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python -m saliency_core.metrics.report " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        args.out.write_text(f"{table}\n\n{note}\n\nCommand: `{command.strip()}`\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
