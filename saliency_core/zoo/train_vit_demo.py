"""Train the offline demo transformer ``ShapesViT`` from scratch on synthetic shape scenes (CPU).

``python -m saliency_core.zoo.train_vit_demo [--minutes M | --steps N] [--out DIR] [--train-scenes N] ...``

Same data and seed ranges as :mod:`saliency_core.zoo.train_demo` (whose scene generation and augmentation
it reuses): training seeds ``TRAIN_SEED_START ..`` (0 .. N-1), held-out seeds ``HELDOUT_SEED_START ..``
(1_000_000 ..), never trained on.  Augmentation: random ``crop``-pixel windows (128, an 8x8 token grid
fed through :func:`~saliency_core.zoo.shapes_vit.forward_window` with a random window of the position
embedding) holding the whole target, for all but the last ``full_fraction`` (15%) of the steps, which see
whole 224 px scenes; and the 8 flips/rotations by 90 degrees.  AdamW, linear warm-up then cosine decay,
label smoothing 0.1, gradient clipping at norm 1.

The trunk (``conv_proj``'s ShapesNet stages) is loaded from ``assets/shapes_demo.safetensors`` and
kept fixed (weights and batch-norm statistics); the 1x1 projection, position embedding, class token,
encoder blocks and head are trained.  From scratch, a conv-stem ViT of this size stayed at chance
here for 25k training images (measured: loss ln 6 at step 800).

Length: ``--steps N`` trains exactly N steps (deterministic for a given seed); otherwise ``--minutes M``
times the first ``calibrate`` steps on this machine and fixes the step count that fits M minutes (the
count is written to the json, so ``--steps`` with it repeats the run).  A ViT has no convolutional prior in
its attention, so it needs many more steps than ShapesNet: the budget mode keeps the run bounded on a
shared machine.

Writes ``shapes_vit_demo.safetensors`` and ``shapes_vit_demo.json`` (settings, seed ranges, held-out
accuracy and Grad-CAM pointing over the reshaped tokens, seconds, load) into ``--out`` (default ``assets/``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from saliency_core.zoo import HELDOUT_SEED_START, TRAIN_SEED_START
from saliency_core.zoo.check_demo import load_demo_model, pointing_hit, predict
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_batch
from saliency_core.zoo.shapes_vit import (
    CAM_LAYERS,
    GRID,
    HEADS,
    HIDDEN,
    LAYERS,
    MEAN,
    MLP,
    PATCH,
    STD,
    TRUNK,
    build_shapes_vit,
    forward_window,
    normalize,
)
from saliency_core.zoo.train_demo import _augment, _cpu_seconds, _load_average, generate

DEFAULT_OUT = Path(__file__).resolve().parent.parent.parent / "assets"
WEIGHTS_NAME = "shapes_vit_demo.safetensors"
META_NAME = "shapes_vit_demo.json"


def token_gradcam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM ``[N, H, W]`` over the layer's patch tokens read as a grid (class token dropped)."""

    store: dict[str, torch.Tensor] = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: store.update(a=out))
    try:
        with torch.enable_grad():
            logits = model(x)
            (grads,) = torch.autograd.grad(logits.gather(1, classes.view(-1, 1)).sum(), store["a"])
    finally:
        handle.remove()
    acts, grads = store["a"][:, 1:].detach(), grads[:, 1:]  # [N, h*w, C]
    cam = (grads.mean(1, keepdim=True) * acts).sum(2)  # channel weights = token mean of the gradients
    side = math.isqrt(cam.shape[1])
    cam = cam.view(-1, 1, side, side)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def evaluate(
    model: nn.Module, seeds: Sequence[int], layer: str = CAM_LAYERS[0], batch_size: int = 50
) -> dict[str, float]:
    """Accuracy and token Grad-CAM pointing hit-rate (true class, 15 px) on the scenes of ``seeds``."""
    model.eval()
    correct = hits = 0
    for i in range(0, len(seeds), batch_size):
        images, labels, masks = make_batch(seeds[i : i + batch_size])
        x, y = normalize(torch.from_numpy(images)), torch.from_numpy(labels)
        with torch.no_grad():
            correct += int((model(x).argmax(1) == y).sum())
        cams = token_gradcam(model, x, y, layer)
        hits += sum(pointing_hit(cams[j], masks[j]) for j in range(len(labels)))
    n = max(len(seeds), 1)
    return {"accuracy": correct / n, "pointing": hits / n}


def _lr(step: int, total: int | None, warmup: int, peak: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup or total is None:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train(
    steps: int = 0,
    minutes: float = 25.0,
    out_dir: str | Path | None = None,
    seed: int = 0,
    train_scenes: int = 10_000,
    heldout_scenes: int = 1_000,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    crop: int = 128,
    full_fraction: float = 0.15,
    warmup: int = 150,
    calibrate: int = 40,
    threads: int = 2,
    workers: int = 2,
    monitor: int = 200,
    log_every: int = 200,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train ShapesViT, write the weights and metadata into ``out_dir`` and return the metadata dict.

    Every ``log_every`` steps the accuracy on the first ``monitor`` held-out scenes is logged (only logged:
    nothing is selected on it, the final weights are those of the last step).
    """
    from safetensors.torch import save_file

    log = log or (lambda _msg: None)
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    load_start = _load_average()

    train_seeds = list(range(TRAIN_SEED_START, TRAIN_SEED_START + train_scenes))
    images, labels, boxes = generate(train_seeds, workers)
    heldout = list(range(HELDOUT_SEED_START, HELDOUT_SEED_START + heldout_scenes))
    mon_images, mon_labels, _ = make_batch(heldout[:monitor])
    t_gen = time.perf_counter() - t_start
    log(f"generated {len(images)} training scenes in {t_gen:.1f}s")

    model = build_shapes_vit()
    cnn = load_demo_model()  # the trunk starts from the bundled ShapesNet and stays fixed
    for name in TRUNK:
        model.conv_proj.get_submodule(name).load_state_dict(cnn.get_submodule(name).state_dict())
        model.conv_proj.get_submodule(name).requires_grad_(False)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    # full 224 px steps cost about (224 / crop)**2 crop steps (pixels and tokens both scale so)
    ratio = (224 / crop) ** 2
    total = steps if steps else None  # with a time budget: fixed after `calibrate` steps, then logged
    history: list[dict] = []
    order = rng.permutation(len(images))
    pos, step, t_loop = 0, 0, time.perf_counter()
    sums = [0.0, 0.0, 0]
    while total is None or step < total:
        if total is None and step == calibrate:
            per_step = (time.perf_counter() - t_loop) / calibrate
            total = max(calibrate + 1, int(minutes * 60 / (per_step * (1 + (ratio - 1) * full_fraction))))
            log(f"{per_step:.2f}s per {crop}px step: {total} steps fit {minutes} minutes")
        full = total is not None and step >= total * (1 - full_fraction)
        size = 224 if full else crop
        grid = size // PATCH
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(images)), 0
        idx = np.sort(order[pos : pos + batch_size])
        pos += batch_size
        x = normalize(torch.from_numpy(_augment(images[idx], boxes[idx], size, rng)))
        y = torch.from_numpy(labels[idx])
        offset = tuple(int(v) for v in rng.integers(0, GRID - grid + 1, size=2))
        for group in opt.param_groups:
            group["lr"] = _lr(step, total, warmup, lr)
        model.train()
        for name in TRUNK:  # fixed trunk: its batch norms keep ShapesNet's statistics
            model.conv_proj.get_submodule(name).eval()
        seq = forward_window(model, x, offset, all_tokens=True)  # type: ignore[arg-type]
        logits = model.heads(seq[:, 0])
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        sums[0] += float(loss.detach()) * len(idx)
        sums[1] += float((logits.argmax(1) == y).sum())
        sums[2] += len(idx)
        if step % log_every == 0 or step == total:
            model.eval()
            mon = round(float((predict(model, mon_images) == mon_labels).mean()), 4) if monitor else None
            history.append(
                {
                    "step": step,
                    "size": size,
                    "lr": round(_lr(step - 1, total, warmup, lr), 6),
                    "loss": round(sums[0] / sums[2], 4),
                    "train_accuracy": round(sums[1] / sums[2], 4),
                    "monitor_accuracy": mon,
                    "seconds": round(time.perf_counter() - t_loop, 1),
                }
            )
            sums = [0.0, 0.0, 0]
            log(json.dumps(history[-1]))
    train_seconds = time.perf_counter() - t_start - t_gen

    model.eval()
    res = evaluate(model, heldout) if heldout else {"accuracy": float("nan"), "pointing": float("nan")}
    log(
        f"held-out ({len(heldout)}): accuracy {res['accuracy']:.4f}  token Grad-CAM pointing {res['pointing']:.4f}"
    )

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"model": "ShapesViT"})  # one key: stable bytes
    meta = {
        "model": "ShapesViT",
        "architecture": "torchvision.models.VisionTransformer",
        "weights": WEIGHTS_NAME,
        "classes": list(SHAPE_CLASSES),
        "input_size": [224, 224],
        "mean": list(MEAN),
        "std": list(STD),
        "patch_size": PATCH,
        "num_layers": LAYERS,
        "num_heads": HEADS,
        "hidden_dim": HIDDEN,
        "mlp_dim": MLP,
        "trunk": "ShapesNet " + "+".join(TRUNK) + " from shapes_demo.safetensors, fixed",
        "cam_layers": list(CAM_LAYERS),
        "seed": seed,
        "steps": total,
        "minutes_budget": None if steps else minutes,
        "warmup_steps": warmup,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "label_smoothing": 0.1,
        "trainable_parameters": sum(q.numel() for q in params),
        "crop": crop,
        "full_fraction": full_fraction,
        "train_seeds": [train_seeds[0], train_seeds[-1]] if train_seeds else [],
        "heldout_seeds": [heldout[0], heldout[-1]] if heldout else [],
        "heldout_accuracy": res["accuracy"],
        "heldout_gradcam_pointing": res["pointing"],
        "pointing_tolerance_px": 15,
        "history": history,
        "parameters": sum(p.numel() for p in model.parameters()),
        "generation_seconds": round(t_gen, 1),
        "training_seconds": round(train_seconds, 1),
        "evaluation_seconds": round(time.perf_counter() - t_start - t_gen - train_seconds, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        # wall-clock depends on what else the machine runs: CPU seconds and the load average tell them apart
        "cpu_seconds": round(_cpu_seconds(), 1),
        "load_average": [round(load_start, 2), round(_load_average(), 2)],
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "torch_version": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (out / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"wrote {out / WEIGHTS_NAME} and {out / META_NAME}")
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=0, help="exact number of steps (0: fit --minutes)")
    p.add_argument("--minutes", type=float, default=25.0, help="training time budget when --steps is 0")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-scenes", type=int, default=10_000)
    p.add_argument("--heldout-scenes", type=int, default=1_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--crop", type=int, default=128, help="training crop (multiple of 16) holding the target")
    p.add_argument("--full-fraction", type=float, default=0.15, help="last steps' share at full 224px")
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--calibrate", type=int, default=40, help="steps timed to fit --minutes")
    p.add_argument("--log-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes for scene generation")
    p.add_argument("--monitor", type=int, default=200, help="held-out scenes whose accuracy is logged")
    args = p.parse_args(argv)
    train(
        steps=args.steps,
        minutes=args.minutes,
        out_dir=args.out,
        seed=args.seed,
        train_scenes=args.train_scenes,
        heldout_scenes=args.heldout_scenes,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        crop=args.crop,
        full_fraction=args.full_fraction,
        warmup=args.warmup,
        calibrate=args.calibrate,
        log_every=args.log_every,
        threads=args.threads,
        workers=args.workers,
        monitor=args.monitor,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
