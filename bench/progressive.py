"""Adaptive (approximate) occlusion against exact occlusion on the bundled scenes: time ratio, Spearman
correlation of the maps, windows computed; and when exact occlusion's first (coarse) map arrives.

    python bench/progressive.py [--models shapes_demo,resnet18] [--scenes 8] [--patch 16] [--stride 4]
                                [--budget 0.1] [--threads 2] [--json PATH]

Both sides use the engine's default exact path (incremental where the model allows) with the cache off,
so the ratio is adaptive against the fastest exact map, not against plain passes. ResNet-18 is random-init
(torchvision, weights=None), as in the other benches; `shapes_demo` is the bundled trained CNN.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_vs_anchors.py; must precede importing torch

import numpy as np
import torch
import torchvision
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_anchors import emit_json

import saliency_core as sc


def load(name: str) -> sc.LoadedModel:
    if name == "shapes_demo":
        return sc.load_model(name)
    return sc.get_engine().wrap(getattr(torchvision.models, name)(weights=None).eval())


def add_scene_args(ap: argparse.ArgumentParser) -> None:
    """The options the occlusion-mode benches share: models, bundled scenes, patch and stride."""
    ap.add_argument("--models", default="shapes_demo,resnet18")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--stride", type=int, default=4)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap)
    ap.add_argument("--budget", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    scenes = [s for s in sc.list_samples() if s.kind == "synthetic"][: args.scenes]
    rows = []
    for name in args.models.split(","):
        model = load(name)
        for scene in scenes:
            x = model.preprocess(scene.image())
            common = dict(patch=args.patch, stride=args.stride, use_cache=False)
            first: list[float] = []
            t0 = time.perf_counter()
            exact = sc.attribute(
                model,
                x,
                "occlusion",
                preview=lambda m, _, seen=first: seen.append(time.perf_counter()),
                **common,
            )
            exact_s = time.perf_counter() - t0
            start = time.perf_counter()
            fast = sc.attribute(model, x, "occlusion", mode="adaptive", budget=args.budget, **common)
            fast_s = time.perf_counter() - start
            rho = float(spearmanr(exact.map.flatten().numpy(), fast.map.flatten().numpy())[0])
            row = {
                "model": name,
                "scene": scene.id,
                "exact_s": round(exact_s, 3),
                "adaptive_s": round(fast_s, 3),
                "speedup": round(exact_s / fast_s, 2),
                "spearman": round(rho, 4),
                "windows": f"{fast.extras['windows']}/{fast.extras['windows_total']}",
                "first_map_share": round((first[0] - t0) / exact_s, 3) if first else None,
            }
            rows.append(row)
            print(row, flush=True)
    print(
        "\nmodel        speedup (median)  Spearman (min / median)  first exact map at (share of exact time)"
    )
    for name in args.models.split(","):
        mine = [r for r in rows if r["model"] == name]
        shares = [r["first_map_share"] for r in mine if r["first_map_share"] is not None]
        print(
            f"{name:12} {np.median([r['speedup'] for r in mine]):>8.1f}x        "
            f"{min(r['spearman'] for r in mine):.3f} / {np.median([r['spearman'] for r in mine]):.3f}"
            f"            {np.median(shares) if shares else float('nan'):.3f}"
        )
    emit_json(
        {
            "bench": "progressive",
            "patch": args.patch,
            "stride": args.stride,
            "budget": args.budget,
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
