"""Exact incremental occlusion (saliency_core.methods.incremental) side by side with captum.attr.Occlusion.

    python bench/incremental.py [--models vgg16,resnet18] [--configs 16:8,32:16] [--size 224] [--batch 32]
                                [--threads 2] [--max-windows 0] [--captum-max-windows 400]

Same random-init torchvision model (weights=None, eval), same input, target (the top class), patch,
stride, zero baseline and batch size on both sides. Ours includes ``plan`` (the unoccluded pass, the
caches and its self-check). Where the full grid has more than --max-windows windows (0: no limit) both
sides run the same evenly spread subset of windows; where it has more than --captum-max-windows, captum's
time is estimated from its measured seconds per window on the smaller grid of the same model
("captum_est" in the JSON) and the map is checked against plain batched occlusion instead. Prints a table,
then one JSON line per row.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saliency_core.methods.incremental import plan


def window_starts(size: int, patch: int, stride: int) -> list[int]:
    count = math.ceil(max(size - patch, 0) / stride) + 1
    return [i * stride for i in range(count)]


def accumulate(total: torch.Tensor, count: torch.Tensor, windows, drops, patch: int) -> None:
    for (y, x), d in zip(windows, drops.tolist()):
        total[y : y + patch, x : x + patch] += d
        count[y : y + patch, x : x + patch] += 1


def ours(model, x, target, windows, patch, batch) -> torch.Tensor:
    p = plan(model, x)
    assert not isinstance(p, str), p
    h, w = x.shape[-2:]
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    with torch.no_grad():
        reference = float(model(x)[0, target])
    base = torch.zeros_like(x)
    for i in range(0, len(windows), batch):
        chunk = windows[i : i + batch]
        accumulate(total, count, chunk, reference - p.outputs(chunk, patch, base)[:, target], patch)
    return total / count.clamp(min=1)


def plain(model, x, target, windows, patch, batch) -> torch.Tensor:
    """What captum does per window, batched the same way: one forward pass per occluded image."""
    h, w = x.shape[-2:]
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    with torch.no_grad():
        reference = float(model(x)[0, target])
        for i in range(0, len(windows), batch):
            chunk = windows[i : i + batch]
            b = x.repeat(len(chunk), 1, 1, 1)
            for j, (y, xx) in enumerate(chunk):
                b[j, :, y : y + patch, xx : xx + patch] = 0
            accumulate(total, count, chunk, reference - model(b)[:, target], patch)
    return total / count.clamp(min=1)


def captum(model, x, target, patch, stride, batch) -> torch.Tensor:
    from captum.attr import Occlusion

    with torch.no_grad():
        a = Occlusion(model).attribute(
            x,
            sliding_window_shapes=(3, patch, patch),
            strides=(3, stride, stride),
            baselines=0,
            target=target,
            perturbations_per_eval=batch,
        )
    return a[0, 0]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="vgg16,resnet18")
    ap.add_argument("--configs", default="32:16,16:8", help="patch:stride pairs")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-windows", type=int, default=0, help="0: every window of the grid")
    ap.add_argument("--captum-max-windows", type=int, default=400)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None).eval()
        x = torch.randn(1, 3, args.size, args.size)
        with torch.no_grad():
            target = int(model(x).argmax())
        captum_per_window = None
        for cfg in args.configs.split(","):
            patch, stride = (int(v) for v in cfg.split(":"))
            starts = window_starts(args.size, patch, stride)
            grid = [(y, xx) for y in starts for xx in starts]
            windows = grid
            if args.max_windows and len(grid) > args.max_windows:
                step = len(grid) / args.max_windows
                windows = [grid[int(i * step)] for i in range(args.max_windows)]
            ours(model, x, target, windows[: args.batch], patch, args.batch)  # warm-up (allocator, oneDNN)
            ours_map, ours_s = timed(ours, model, x, target, windows, patch, args.batch)
            row = {"model": name, "patch": patch, "stride": stride, "windows": len(windows), "ours_s": ours_s}
            if windows is grid and len(grid) <= args.captum_max_windows:
                theirs, captum_s = timed(captum, model, x, target, patch, stride, args.batch)
                captum_per_window = captum_s / len(grid)
                row.update(captum_s=captum_s, ratio=captum_s / ours_s, map_rel_err=rel(ours_map, theirs))
            else:
                theirs, plain_s = timed(plain, model, x, target, windows, patch, args.batch)
                row.update(plain_s=plain_s, ratio_plain=plain_s / ours_s, map_rel_err=rel(ours_map, theirs))
                if captum_per_window is not None:
                    row.update(captum_est_s=captum_per_window * len(windows))
                    row.update(ratio=row["captum_est_s"] / ours_s)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        f"\n{'model':10} {'patch':>5} {'stride':>6} {'windows':>7} {'ours s':>8} {'captum s':>9} {'ratio':>6} "
        f"{'plain s':>8} {'map err':>8}"
    )
    for r in rows:
        cap = r.get("captum_s", r.get("captum_est_s"))
        cap_txt = "-" if cap is None else f"{cap:.1f}" + ("*" if "captum_est_s" in r else "")
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        plain_txt = f"{r['plain_s']:.1f}" if "plain_s" in r else "-"
        print(
            f"{r['model']:10} {r['patch']:>5} {r['stride']:>6} {r['windows']:>7} {r['ours_s']:>8.1f} "
            f"{cap_txt:>9} {ratio:>6} {plain_txt:>8} {r['map_rel_err']:>8.1e}"
        )
    print("* estimated from captum's measured seconds per window on the smaller grid of the same model")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
