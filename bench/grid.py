"""Comparison-grid timing: eight methods on one image through `sc.attribute`, as the Compare page runs them.

    python bench/grid.py [--model resnet50] [--size 224] [--device cuda] [--repeat 3] [--json PATH]

- first: the very first grid in the process (kernel selection, allocator growth, lazy initialisation).
- cold: the engine's cache cleared, then the eight methods in order with the cache on, so what one method
  computed (forward output, gradients, layer activations) serves the next, as on a new image in the app;
  median of `--repeat` grids. Goal on a GPU: <= 300 ms in all.
- warm: the same grid again without clearing: every map comes from the cache.
- CAM switching: Grad-CAM, then Grad-CAM++, XGrad-CAM, LayerCAM and HiResCAM on the same layer: the
  images through the model after the first must be 0 (the script exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_vs_anchors.py; must precede importing torch

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_anchors import emit_json, timed

import saliency_core as sc

GRID = (
    "gradient",
    "gradient_x_input",
    "guided_backprop",
    "smoothgrad",
    "integrated_gradients",
    "gradcam",
    "gradcam_pp",
    "occlusion",
)
SWITCH = ("gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam")
GOAL_COLD_MS = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50", help="a model id sc.load_model knows (random init)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeat", type=int, default=3, help="cold grids timed (median)")
    p.add_argument("--methods", default=",".join(GRID), help="comma-separated method ids (default: eight)")
    p.add_argument("--sample", default="chelsea", help="bundled sample id (sc.list_samples())")
    p.add_argument("--json", default="", metavar="PATH", help="also write the figures as JSON to PATH")
    return p.parse_args(argv)


def run_grid(
    lm: sc.LoadedModel, x: torch.Tensor, target: sc.Target, methods: list[str], device: torch.device
) -> list[tuple[float, int]]:
    """(seconds, images through the model) per method, in order, with the cache as it stands."""
    engine = sc.get_engine()
    out = []
    for method in methods:
        before = engine.forward_count
        seconds = timed(lambda m=method: sc.attribute(lm, x, m, target), device)
        out.append((seconds, engine.forward_count - before))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    engine = sc.set_engine(sc.Engine(device=device))
    torch.manual_seed(0)
    lm = sc.load_model(args.model, weights=None)
    image = sc.load_image(next(s.path for s in sc.list_samples() if s.id == args.sample))
    if args.size == 224:
        x = lm.preprocess(image)
    else:
        x = sc.Preprocess(resize=round(args.size * 256 / 224), crop=args.size)(image, lm.device)
    target = lm.predict(x)[0]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    engine.cache.clear()
    first = run_grid(lm, x, target, methods, device)
    colds = []
    for _ in range(max(1, args.repeat)):
        engine.cache.clear()
        colds.append(run_grid(lm, x, target, methods, device))
    warm = run_grid(lm, x, target, methods, device)  # right after a cold grid: all cached
    totals = [sum(s for s, _ in grid) for grid in colds]
    cold = colds[totals.index(sorted(totals)[len(totals) // 2])]

    engine.cache.clear()
    switch = run_grid(lm, x, target, list(SWITCH), device)
    switch_passes = sum(n for _, n in switch[1:])

    ms = 1000.0
    cold_ms, warm_ms, first_ms = (sum(s for s, _ in g) * ms for g in (cold, warm, first))
    verdict = ("met" if cold_ms <= GOAL_COLD_MS else "not met") if device.type == "cuda" else "not a GPU here"
    print(
        f"grid: model {args.model} (random init), input 1x3x{args.size}x{args.size}, sample {args.sample}, "
        f"device {engine.describe_device()}, torch {torch.__version__}; cold: median of {len(colds)}"
    )
    print("| method | first (ms) | cold (ms) | warm (ms) | images (cold) |")
    print("|---|---:|---:|---:|---:|")
    for m, f, c, w in zip(methods, first, cold, warm):
        print(f"| {m} | {f[0] * ms:.1f} | {c[0] * ms:.1f} | {w[0] * ms:.1f} | {c[1]} |")
    print(f"| total | {first_ms:.1f} | {cold_ms:.1f} | {warm_ms:.1f} | {sum(n for _, n in cold)} |")
    print(
        f"grid cold {cold_ms:.1f} ms (goal <= {GOAL_COLD_MS:.0f} ms on a GPU: {verdict}), "
        f"warm {warm_ms:.1f} ms, first {first_ms:.1f} ms"
    )
    print(
        "CAM switching " + " -> ".join(SWITCH) + ": images per step " + ", ".join(str(n) for _, n in switch)
        + f" -> {'ok' if switch_passes == 0 else 'FAIL'} (after the first must be 0)"
    )  # fmt: skip

    payload = {
        "bench": "grid",
        "device": engine.describe_device(),
        "torch": torch.__version__,
        "model": args.model,
        "size": args.size,
        "rows": [
            {
                "method": m,
                "ours_s": round(c[0], 6),
                "anchor": None,
                "anchor_s": None,
                "ratio": None,
                "first_s": round(f[0], 6),
                "warm_s": round(w[0], 6),
                "passes": c[1],
            }
            for m, f, c, w in zip(methods, first, cold, warm)
        ],
        "cold_ms": round(cold_ms, 3),
        "warm_ms": round(warm_ms, 3),
        "first_ms": round(first_ms, 3),
        "goal_cold_ms": GOAL_COLD_MS,
        "cam_switch_passes": switch_passes,
        "cam_switch_ok": switch_passes == 0,
    }
    emit_json(payload, args.json)
    return 0 if switch_passes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
