"""Time saliency_core side by side with captum and pytorch-grad-cam, in one process.

    python bench/bench_vs_anchors.py [--model resnet50] [--size 224] [--repeat 3] [--device cpu] [--quick]

Same random-init torchvision model, same input, same target class, same layer and the same batch
sizes on both sides. Each method runs once to warm up, then `--repeat` times; the median is shown
(interleaved; when a warm-up run takes longer than `--slow` seconds, it is the measurement).
Ours runs through the public `sc.attribute(..., use_cache=False)` with the engine's cache cleared
before every run, so no pass is reused from an earlier run. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's Score-CAM progress bars
# On a shared CPU, OpenMP threads spinning at barriers can make a 2-thread pass 20x slower (measured
# here under load); passive waiting keeps both sides' figures meaningful. Must precede importing torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import saliency_core as sc


@dataclass
class Row:
    method: str
    anchor: str
    ours: float
    theirs: float
    runs: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50", help="torchvision classification model (random init)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per method after one warm-up")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--layer", default=None, help="CAM layer (default: the deepest convolutional block)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="batch size on both sides (IG, occlusion, Score-CAM)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--slow", type=float, default=20.0, help="warm-up seconds above which one run is enough")
    p.add_argument(
        "--methods",
        default="",
        help="comma-separated subset of: gradient,integrated_gradients,occlusion,guided_backprop,"
        "gradcam,gradcam_pp,scorecam,eigencam,reuse",
    )
    p.add_argument("--quick", action="store_true", help="smaller input (128 px) and one timed run per method")
    p.add_argument("--json", default="", metavar="PATH", help="also write the ratios as JSON to PATH")
    args = p.parse_args(argv)
    if args.quick:
        explicit = set(argv if argv is not None else sys.argv[1:])
        if "--size" not in explicit:
            args.size = 128
        if "--repeat" not in explicit:
            args.repeat = 1
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def measure_pair(
    ours: Callable[[], object], theirs: Callable[[], object], device: torch.device, repeat: int, slow: float
) -> tuple[float, float, int]:
    """Median seconds of ours and of the anchor, and the number of timed runs.

    One warm-up run each; if either took longer than `slow` seconds the warm-up runs are the
    measurement (the model is already warm from earlier methods). Otherwise `repeat` more runs,
    interleaved and alternating which side goes first, so drifting machine load hits both alike.
    """
    warm_ours, warm_theirs = timed(ours, device), timed(theirs, device)
    if max(warm_ours, warm_theirs) > slow or repeat < 1:
        return warm_ours, warm_theirs, 1
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for i in range(repeat):
        if i % 2:
            t_theirs.append(timed(theirs, device))
            t_ours.append(timed(ours, device))
        else:
            t_ours.append(timed(ours, device))
            t_theirs.append(timed(theirs, device))
    return statistics.median(t_ours), statistics.median(t_theirs), repeat


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Occlusion, Saliency
    from pytorch_grad_cam import (
        EigenCAM,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        LayerCAM,
        ScoreCAM,
        XGradCAM,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    # captum warns on every call that it set requires_grad on the input / hooked the ReLUs.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    engine = sc.set_engine(sc.Engine(device=device))
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        target = int(model(x).argmax())
    layer = args.layer or engine.wrap(model).layers()[0]
    layer_module = model.get_submodule(layer)
    batch = args.batch_size
    wanted = {m.strip() for m in args.methods.split(",") if m.strip()}

    def ours(method: str, **params) -> Callable[[], object]:
        def run() -> object:
            engine.cache.clear()  # use_cache=False skips the result cache only; needs are cached too
            return sc.attribute(model, x, method, target, use_cache=False, **params)

        return run

    def gradcam_lib(cls: type, **settings) -> Callable[[], object]:
        def run() -> object:
            try:
                with cls(model=model, target_layers=[layer_module]) as cam:
                    for key, value in settings.items():
                        setattr(cam, key, value)
                    return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
            finally:
                model.zero_grad(set_to_none=True)

        return run

    channels = engine.layer_channels(engine.wrap(model), layer, x)
    cases: list[tuple[str, str, str, Callable[[], object], Callable[[], object]]] = [
        (
            "gradient",
            "gradient",
            "captum Saliency",
            ours("gradient"),
            lambda: Saliency(model).attribute(x, target=target, abs=False),
        ),
        (
            "integrated_gradients",
            "integrated_gradients (32 steps)",
            "captum IntegratedGradients",
            ours("integrated_gradients", steps=32, rule="gausslegendre", baseline="zero", batch_size=batch),
            lambda: IntegratedGradients(model).attribute(
                x, baselines=0.0, target=target, n_steps=32, method="gausslegendre", internal_batch_size=batch
            ),
        ),
        (
            "occlusion",
            "occlusion (patch 32, stride 16)",
            "captum Occlusion",
            ours("occlusion", patch=32, stride=16, baseline="zero", batch_size=batch),
            lambda: Occlusion(model).attribute(
                x,
                sliding_window_shapes=(3, 32, 32),
                strides=(3, 16, 16),
                baselines=0,
                target=target,
                perturbations_per_eval=batch,
            ),
        ),
        (
            "guided_backprop",
            "guided_backprop",
            "captum GuidedBackprop",
            ours("guided_backprop"),
            lambda: GuidedBackprop(model).attribute(x.clone(), target=target),
        ),
        (
            "gradcam",
            "gradcam",
            "captum LayerGradCam",
            ours("gradcam", layer=layer),
            lambda: LayerGradCam(model, layer_module).attribute(x, target=target),
        ),
        (
            "gradcam",
            "gradcam",
            "pytorch-grad-cam GradCAM",
            ours("gradcam", layer=layer),
            gradcam_lib(GradCAM),
        ),
        (
            "gradcam_pp",
            "gradcam_pp",
            "pytorch-grad-cam GradCAMPlusPlus",
            ours("gradcam_pp", layer=layer),
            gradcam_lib(GradCAMPlusPlus),
        ),
        (
            "scorecam",
            f"scorecam ({channels} channels)",
            "pytorch-grad-cam ScoreCAM",
            ours("scorecam", layer=layer, batch_size=batch),
            gradcam_lib(ScoreCAM, batch_size=batch),
        ),
        (
            "eigencam",
            "eigencam",
            "pytorch-grad-cam EigenCAM",
            ours("eigencam", layer=layer),
            gradcam_lib(EigenCAM),
        ),
    ]

    print(
        f"model {args.model} (random init), input 1x3x{args.size}x{args.size}, layer {layer}, "
        f"batch size {batch}, device {engine.describe_device()}"
    )
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, captum {_version('captum')}, "
        f"grad-cam {_version('grad-cam')}, python {platform.python_version()}; "
        f"median of {args.repeat} runs after one warm-up"
    )
    print()

    rows: list[Row] = []
    for key, label, anchor, mine, theirs in cases:
        if wanted and key not in wanted:
            continue
        t_ours, t_theirs, runs = measure_pair(mine, theirs, device, args.repeat, args.slow)
        rows.append(Row(label, anchor, t_ours, t_theirs, runs))
        print(f"  measured {label} vs {anchor}", file=sys.stderr, flush=True)

    sequence = ["gradcam", "gradcam_pp", "xgradcam", "layercam", "hirescam"]
    anchors = [GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM]
    reuse: tuple[list[tuple[str, float]], float, float] | None = None
    if not wanted or "reuse" in wanted:

        def ours_sequence() -> list[tuple[str, float]]:
            engine.cache.clear()
            times = []
            for method in sequence:
                times.append(
                    (method, timed(lambda m=method: sc.attribute(model, x, m, target, layer=layer), device))
                )
            return times

        def theirs_sequence() -> float:
            return sum(timed(gradcam_lib(cls), device) for cls in anchors)

        ours_sequence()  # warm-up
        theirs_sequence()
        ours_runs: list[list[tuple[str, float]]] = []
        theirs_totals: list[float] = []
        for _ in range(max(1, args.repeat)):
            ours_runs.append(ours_sequence())
            theirs_totals.append(theirs_sequence())
        theirs_total = statistics.median(theirs_totals)
        totals = [sum(t for _, t in run) for run in ours_runs]
        median_run = ours_runs[totals.index(sorted(totals)[len(totals) // 2])]
        reuse = (median_run, sum(t for _, t in median_run), theirs_total)

    print(table(rows))
    if reuse is not None:
        per_method, ours_total, theirs_total = reuse
        print()
        print(
            "Engine reuse: " + " -> ".join(sequence) + " on one image (ours with the cache on; "
            "pytorch-grad-cam runs each separately)"
        )
        print("  ours: " + ", ".join(f"{m} {t:.3f}s" for m, t in per_method))
        print(
            f"  ours total {ours_total:.3f}s, pytorch-grad-cam total {theirs_total:.3f}s, "
            f"ratio ours/anchor {ours_total / theirs_total:.2f}"
        )
        rows.append(
            Row(
                "engine reuse (" + " -> ".join(sequence) + ")",
                "pytorch-grad-cam",
                ours_total,
                theirs_total,
                1,
            )
        )
    emit_json(report(args.model, args.size, engine.describe_device(), rows), args.json)


def report(model: str, size: int, device: str, rows: list[Row], **extra: object) -> dict[str, object]:
    """The JSON form of a bench's result: what ran where, and one row per comparison.

    `ratio` is ours / anchor seconds, as in the table (below 1: ours is faster)."""
    return {
        "device": device,
        "torch": torch.__version__,
        "model": model,
        "size": size,
        "rows": [
            {
                "method": r.method,
                "ours_s": round(r.ours, 6),
                "anchor": r.anchor,
                "anchor_s": round(r.theirs, 6),
                "ratio": round(r.ours / r.theirs, 4) if r.theirs > 0 else None,
            }
            for r in rows
        ],
        **extra,
    }


def emit_json(payload: dict[str, object], path: str = "") -> None:
    """Print the payload as one JSON line (the last line of the output) and write it to `path` if given."""
    text = json.dumps(payload, separators=(",", ":"))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    print(text, flush=True)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def table(rows: list[Row]) -> str:
    header = ("method", "anchor", "ours (s)", "anchor (s)", "ours/anchor", "runs")
    body = [
        (r.method, r.anchor, f"{r.ours:.3f}", f"{r.theirs:.3f}", f"{r.ours / r.theirs:.2f}", str(r.runs))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4, 5}

    def fmt(line: tuple[str, ...]) -> str:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "| " + " | ".join(cells) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(header), rule, *(fmt(line) for line in body)])


if __name__ == "__main__":
    main()
