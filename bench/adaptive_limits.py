"""How far sampling alone can take adaptive occlusion: the exact drop of every window, then maps rebuilt
from every k-th window (linear interpolation, as adaptive mode's coarse grid), against the exact map.

    python bench/adaptive_limits.py [--models shapes_demo,resnet18] [--scenes 8] [--patch 16] [--stride 4]
                                    [--steps 2,3,4] [--caps 0.75,0.6,0.45] [--threads 2] [--json PATH]

Prints, per model and step, the share of windows computed and the Spearman correlation to the exact map
(min / median over the bundled scenes). ResNet-18 is random-init (torchvision, weights=None).

With --caps, also Krypton's other approximation, cheaper windows instead of fewer: each layer recomputes at
most that share of its map's side around the patch (`IncrementalPlan.cap`), the rest keeps its unoccluded
values. Printed: speed-up over the exact incremental pass (same windows, same batches) and Spearman, with
every window and with every 2nd.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_vs_anchors.py; must precede importing torch

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import time

from bench_vs_anchors import emit_json
from progressive import add_scene_args, load

import saliency_core as sc
from saliency_core.methods import occlusion as occlusion_module
from saliency_core.methods.incremental import plan
from saliency_core.methods.occlusion import occlusion_baseline
from saliency_core.methods.occlusion_grid import (
    coverage,
    drops_to_map,
    interpolate_drops,
    sub_indices,
    window_starts,
)


def exact_drops(model: sc.LoadedModel, x: torch.Tensor, patch: int, stride: int) -> dict[str, torch.Tensor]:
    """The exact run's window drops and coverage (read from the grid the engine fills)."""
    seen: dict[str, torch.Tensor] = {}
    original = occlusion_module._progressive

    def keep(ctx, grid):  # the engine's private grid, read only
        out = original(ctx, grid)
        seen.update(drops=grid.drops.clone(), cover_y=grid.cover_y.clone(), cover_x=grid.cover_x.clone())
        return out

    occlusion_module._progressive = keep
    try:
        sc.attribute(model, x, "occlusion", patch=patch, stride=stride, use_cache=False)
    finally:
        occlusion_module._progressive = original
    return seen


def capped_drops(
    model: sc.LoadedModel,
    x: torch.Tensor,
    patch: int,
    ys: list[int],
    xs: list[int],
    caps: list[float],
    batch: int = 64,
) -> dict[float, tuple[torch.Tensor, float]]:
    """Per cap (1.0: exact), the drops of the windows at rows ys x columns xs and the seconds they took."""
    with torch.no_grad():
        reference = model.module(x)
    target = int(reference[0].argmax())
    baseline = occlusion_baseline(x, "blur")
    corners = [(a, b) for a in ys for b in xs]
    p = plan(model.module, x)
    assert not isinstance(p, str), p
    out = {}
    for cap in caps:
        p.cap = cap
        t0 = time.perf_counter()
        scores = [
            p.outputs(corners[k : k + batch], patch, baseline)[:, target]
            for k in range(0, len(corners), batch)
        ]
        seconds = time.perf_counter() - t0
        out[cap] = ((reference[0, target] - torch.cat(scores)).reshape(len(ys), len(xs)), seconds)
    return out


def cap_rows(model: sc.LoadedModel, name: str, scene: sc.Sample, args: argparse.Namespace) -> list[dict]:
    x = model.preprocess(scene.image())
    caps = [float(c) for c in args.caps.split(",")]
    h, w = x.shape[-2:]
    ys, xs = window_starts(h, args.patch, args.stride), window_starts(w, args.patch, args.stride)
    got = capped_drops(model, x, args.patch, ys, xs, [1.0, *caps])
    cy, cx = coverage(ys, args.patch, h, x.device), coverage(xs, args.patch, w, x.device)
    exact = drops_to_map(got[1.0][0], cy, cx).flatten().numpy()
    rows = []
    for cap in caps:
        drops, seconds = got[cap]
        rr, cc = sub_indices(len(ys), 2), sub_indices(len(xs), 2)
        every2 = drops_to_map(interpolate_drops(drops, rr, cc), cy, cx).flatten().numpy()
        row = {
            "model": name,
            "scene": scene.id,
            "cap": cap,
            "speedup": round(got[1.0][1] / seconds, 3),
            "spearman": round(float(spearmanr(exact, drops_to_map(drops, cy, cx).flatten().numpy())[0]), 4),
            "spearman_every2": round(float(spearmanr(exact, every2)[0]), 4),
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap)
    ap.add_argument("--steps", default="2,3,4")
    ap.add_argument("--caps", default="", help="projective-field caps to measure, e.g. 0.75,0.6,0.45")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    scenes = [s for s in sc.list_samples() if s.kind == "synthetic"][: args.scenes]
    rows, capped = [], []
    for name in args.models.split(","):
        model = load(name)
        for scene in scenes:
            if args.caps:
                capped += cap_rows(model, name, scene, args)
            got = exact_drops(model, model.preprocess(scene.image()), args.patch, args.stride)
            drops, cy, cx = got["drops"], got["cover_y"], got["cover_x"]
            exact = drops_to_map(drops, cy, cx).flatten().numpy()
            ny, nx = drops.shape
            for step in steps:
                rr, cc = sub_indices(ny, step), sub_indices(nx, step)
                rebuilt = drops_to_map(interpolate_drops(drops, rr, cc), cy, cx).flatten().numpy()
                row = {
                    "model": name,
                    "scene": scene.id,
                    "step": step,
                    "share": round(len(rr) * len(cc) / (ny * nx), 4),
                    "spearman": round(float(spearmanr(exact, rebuilt)[0]), 4),
                }
                rows.append(row)
                print(row, flush=True)
    print("\nmodel        every k-th window  share   Spearman (min / median)")
    for name in args.models.split(","):
        for step in steps:
            mine = [r for r in rows if r["model"] == name and r["step"] == step]
            rhos = [r["spearman"] for r in mine]
            print(
                f"{name:12} {step:>8}          {mine[0]['share']:.3f}   {min(rhos):.3f} / {np.median(rhos):.3f}"
            )
    if capped:
        print(
            "\nmodel        cap    speed-up over exact (median)   Spearman all windows / every 2nd (min / median)"
        )
        for name in args.models.split(","):
            for cap in sorted({r["cap"] for r in capped}, reverse=True):
                mine = [r for r in capped if r["model"] == name and r["cap"] == cap]
                all_, half = [r["spearman"] for r in mine], [r["spearman_every2"] for r in mine]
                print(
                    f"{name:12} {cap:<5}  {np.median([r['speedup'] for r in mine]):>6.2f}x"
                    f"                        {min(all_):.3f} / {np.median(all_):.3f}"
                    f"   {min(half):.3f} / {np.median(half):.3f}"
                )
    emit_json(
        {
            "bench": "adaptive_limits",
            "patch": args.patch,
            "stride": args.stride,
            "rows": rows,
            "capped": capped,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
