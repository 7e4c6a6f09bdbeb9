"""Train the offline demo classifier ``ShapesNet`` from scratch on synthetic shape scenes (CPU).

``python -m saliency_core.zoo.train_demo [--epochs N] [--out DIR] [--seed S] [--train-scenes N] ...``

- training scenes: seeds ``TRAIN_SEED_START .. TRAIN_SEED_START + train_scenes - 1`` (0 .. N-1);
- held-out scenes: seeds ``HELDOUT_SEED_START .. + heldout_scenes - 1`` (1_000_000 ..), never trained on;
- augmentation: random ``crop``-pixel windows (160) that hold the whole target, for all but the last
  ``full_epochs`` (1), which see whole 224 px scenes; and the 8 flips/rotations by 90 degrees of each scene
  (every class is invariant to them).  Crops halve the cost of an epoch; the object scale is unchanged.
- optimiser: AdamW with a one-cycle learning-rate schedule, label smoothing 0.05, batch 32.

Writes ``shapes_demo.safetensors`` (the state dict) and ``shapes_demo.json`` (seed, epochs, seed ranges,
held-out accuracy and Grad-CAM pointing hit-rate, parameter count, training seconds, torch version, date) into
``--out`` (default: the repository's ``assets/``).  The defaults take about 5 minutes on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from saliency_core.zoo import HELDOUT_SEED_START, TRAIN_SEED_START
from saliency_core.zoo.check_demo import evaluate
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_scene
from saliency_core.zoo.shapes_net import CAM_LAYERS, MEAN, STD, build_shapes_net, normalize

DEFAULT_OUT = Path(__file__).resolve().parent.parent.parent / "assets"
WEIGHTS_NAME = "shapes_demo.safetensors"
META_NAME = "shapes_demo.json"


def _scenes(seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.empty((len(seeds), 224, 224, 3), np.uint8)
    labels = np.empty(len(seeds), np.int64)
    boxes = np.empty((len(seeds), 4), np.int64)
    for i, s in enumerate(seeds):
        sc = make_scene(s)
        images[i], labels[i], boxes[i] = sc.image, sc.label, sc.box
    return images, labels, boxes


def generate(seeds: Sequence[int], workers: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``[N, 224, 224, 3]`` uint8, labels ``[N]`` and target boxes ``[N, 4]`` for ``seeds``.

    Uses ``workers`` processes when there are enough scenes for that to pay.
    """
    seeds = list(seeds)
    if workers <= 1 or len(seeds) < 2000:
        return _scenes(seeds)
    chunks = [seeds[i : i + 500] for i in range(0, len(seeds), 500)]
    with mp.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_scenes, chunks)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the scene workers); own only off Unix."""
    try:
        import resource
    except ImportError:  # Windows
        return time.process_time()
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on Windows
        return float("nan")


def _augment(images: np.ndarray, boxes: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop x crop`` window holding the whole target, then a random flip/rotation by 90 degrees."""
    size = images.shape[1]
    out = np.empty((len(images), crop, crop, 3), np.uint8)
    for i, k in enumerate(rng.integers(0, 8, size=len(images))):
        x0, y0, x1, y1 = boxes[i]
        lo_x, hi_x = max(0, x1 - crop), min(x0, size - crop)
        lo_y, hi_y = max(0, y1 - crop), min(y0, size - crop)
        cx = int(rng.integers(min(lo_x, hi_x), max(lo_x, hi_x) + 1))  # lo > hi only if the target is
        cy = int(rng.integers(min(lo_y, hi_y), max(lo_y, hi_y) + 1))  # larger than the crop
        img = np.rot90(images[i, cy : cy + crop, cx : cx + crop], k % 4)
        out[i] = img[:, ::-1] if k >= 4 else img
    return out


def train(
    epochs: int = 4,
    out_dir: str | Path | None = None,
    seed: int = 0,
    train_scenes: int = 8_000,
    heldout_scenes: int = 1_000,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    crop: int = 160,
    full_epochs: int = 1,
    threads: int = 2,
    workers: int = 2,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train ShapesNet, write the weights and metadata into ``out_dir`` and return the metadata dict."""
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
    t_gen = time.perf_counter() - t_start
    log(f"generated {len(images)} training scenes in {t_gen:.1f}s")

    model = build_shapes_net().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        model.train()
        t_ep = time.perf_counter()
        size = 224 if epoch >= epochs - full_epochs else crop
        order = rng.permutation(len(images))
        total_loss = total_correct = seen = 0.0
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * batch_size : (step + 1) * batch_size])
            batch = _augment(images[idx], boxes[idx], size, rng)
            x = normalize(torch.from_numpy(batch)).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(labels[idx])
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
            total_correct += float((logits.argmax(1) == y).sum())
            seen += len(idx)
        log(
            f"epoch {epoch + 1}/{epochs} at {size}px: loss {total_loss / seen:.4f}  train acc {total_correct / seen:.4f}  "
            f"({time.perf_counter() - t_ep:.1f}s)"
        )
    train_seconds = time.perf_counter() - t_start - t_gen

    model = model.to(memory_format=torch.contiguous_format).eval()
    heldout = list(range(HELDOUT_SEED_START, HELDOUT_SEED_START + heldout_scenes))
    res = (
        evaluate(model, heldout, CAM_LAYERS[0])
        if heldout
        else {"accuracy": float("nan"), "pointing": float("nan")}
    )
    log(
        f"held-out ({len(heldout)} scenes): accuracy {res['accuracy']:.4f}  Grad-CAM pointing {res['pointing']:.4f}"
    )

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # one metadata key only: safetensors writes metadata in hash-map order, so several keys would make the
    # bytes of the file differ between identical runs (classes and the rest are in the json)
    save_file(state, str(out / WEIGHTS_NAME), metadata={"model": "ShapesNet"})
    meta = {
        "model": "ShapesNet",
        "weights": WEIGHTS_NAME,
        "classes": list(SHAPE_CLASSES),
        "input_size": [224, 224],
        "mean": list(MEAN),
        "std": list(STD),
        "cam_layers": list(CAM_LAYERS),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "crop": crop,
        "full_epochs": full_epochs,
        "train_seeds": [train_seeds[0], train_seeds[-1]] if train_seeds else [],
        "heldout_seeds": [heldout[0], heldout[-1]] if heldout else [],
        "heldout_accuracy": res["accuracy"],
        "heldout_gradcam_pointing": res["pointing"],
        "pointing_tolerance_px": 15,
        "parameters": sum(p.numel() for p in model.parameters()),
        "generation_seconds": round(t_gen, 1),
        "training_seconds": round(train_seconds, 1),
        "evaluation_seconds": round(time.perf_counter() - t_start - t_gen - train_seconds, 1),
        "total_seconds": round(time.perf_counter() - t_start, 1),
        # wall-clock times depend on what else the machine runs: CPU seconds (this process and the scene
        # generation workers) and the 1-minute load average at the start and the end tell them apart
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
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-scenes", type=int, default=8_000)
    p.add_argument("--heldout-scenes", type=int, default=1_000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--crop", type=int, default=160, help="training crop size (holding the whole target)")
    p.add_argument("--full-epochs", type=int, default=1, help="last epochs trained on full 224px scenes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes for scene generation")
    args = p.parse_args(argv)
    train(
        epochs=args.epochs,
        out_dir=args.out,
        seed=args.seed,
        train_scenes=args.train_scenes,
        heldout_scenes=args.heldout_scenes,
        batch_size=args.batch_size,
        lr=args.lr,
        crop=args.crop,
        full_epochs=args.full_epochs,
        threads=args.threads,
        workers=args.workers,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
