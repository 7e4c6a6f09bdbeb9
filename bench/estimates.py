"""Estimated vs measured seconds of every classification method on the demo model.

For each method (at its defaults, and with --heavy at a heavier setting): the estimate before any pass
(the probe's), one warm-up run, then the estimate and the median compute seconds of `--repeat` uncached
runs. Prints a markdown table. Not a test: pytest only collects `tests/`.

    python bench/estimates.py               # defaults, 224 px, median of 3
    python bench/estimates.py --heavy --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import saliency_core as sc

# Heavier than the defaults: more samples, steps, masks, windows, and the widest layer for Score-CAM.
HEAVY = {
    "smoothgrad": {"samples": 50},
    "integrated_gradients": {"steps": 64},
    "occlusion": {"patch": 16, "stride": 8},
    "rise": {"masks": 1000},
    "scorecam": {"layer": "stage3"},
    "gradcam": {"layer": "stage2"},
}


def demo_image(model: sc.LoadedModel) -> object:
    path = Path(__file__).resolve().parents[1] / "assets" / "samples" / "scene_00.png"
    return model.preprocess(np.asarray(Image.open(path).convert("RGB")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--heavy", action="store_true", help="also the heavier settings")
    parser.add_argument("--methods", default="", help="comma-separated subset")
    args = parser.parse_args()
    engine = sc.Engine(device="cpu")
    info = next(m for m in sc.list_models() if m.id == "shapes_demo")
    model = engine.load_model("shapes_demo", weights="default" if info.weights_available else "random")
    x = demo_image(model)
    chosen = [m.id for m in sc.list_methods(task="classification")]
    if args.methods:
        chosen = [m for m in chosen if m in args.methods.split(",")]
    started = time.perf_counter()
    first = engine.estimate(model, "gradient", {}, x)
    probe = time.perf_counter() - started
    print(f"probe: {probe * 1000:.0f} ms; gradient before any run: {fmt(first.seconds)}\n")
    print("| method | setting | passes (fwd + bwd) | probe estimate | estimate | measured | ratio |")
    print("|---|---|---|---|---|---|---|")
    runs = [(m, "defaults", {}) for m in chosen]
    if args.heavy:
        runs += [(m, "heavy", p) for m, p in HEAVY.items() if m in chosen]
    for method, setting, params in runs:
        before = engine.estimate(model, method, params, x)
        engine.attribute(model, x, method, use_cache=False, **params)  # warm-up
        times = []
        for _ in range(args.repeat):
            times.append(engine.attribute(model, x, method, use_cache=False, **params).compute_seconds)
        est = engine.estimate(model, method, params, x)
        measured = statistics.median(times)
        ratio = est.seconds / measured if est.seconds and measured > 0 else float("nan")
        label = ", ".join(f"{k}={v}" for k, v in params.items()) or setting
        print(
            f"| {method} | {label} | {est.forward_passes} + {est.backward_passes} | {fmt(before.seconds)} | "
            f"{fmt(est.seconds)} | {fmt(measured)} | {ratio:.2f} |"
        )


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
