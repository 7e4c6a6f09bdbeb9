"""How far sampling alone can take adaptive occlusion: the exact drop of every window, then maps rebuilt
from every k-th window (linear interpolation, as adaptive mode's coarse grid), against the exact map.

    python bench/adaptive_limits.py [--models shapes_demo,resnet18] [--scenes 8] [--patch 16] [--stride 4]
                                    [--steps 2,3,4] [--threads 2] [--json PATH]

Prints, per model and step, the share of windows computed and the Spearman correlation to the exact map
(min / median over the bundled scenes). ResNet-18 is random-init (torchvision, weights=None).
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

from bench_vs_anchors import emit_json
from progressive import load

import saliency_core as sc
from saliency_core.methods import occlusion as occlusion_module
from saliency_core.methods.occlusion_grid import drops_to_map, interpolate_drops, sub_indices


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="shapes_demo,resnet18")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--steps", default="2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = [int(s) for s in args.steps.split(",")]
    scenes = [s for s in sc.list_samples() if s.kind == "synthetic"][: args.scenes]
    rows = []
    for name in args.models.split(","):
        model = load(name)
        for scene in scenes:
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
    emit_json(
        {"bench": "adaptive_limits", "patch": args.patch, "stride": args.stride, "rows": rows}, args.json
    )


if __name__ == "__main__":
    main()
