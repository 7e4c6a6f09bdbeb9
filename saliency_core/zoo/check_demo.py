"""Check the demo weights: held-out accuracy and Grad-CAM pointing game on scenes never used in training.

``python -m saliency_core.zoo.check_demo [--weights PATH] [--n 200] [--start 1000000] [--layer stage4]``

Grad-CAM here is a small standalone implementation (forward hook on the layer, ``torch.autograd.grad`` of the
class logit w.r.t. its activations, channel weights = spatial mean of the gradients, ``cam = sum_k w_k A_k``,
bilinear upsampling to the input size).  A scene is a *hit* when the argmax of the map lies within
``tolerance`` pixels (Euclidean) of the nearest ground-truth mask pixel.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from saliency_core.zoo import HELDOUT_SEED_START
from saliency_core.zoo.scenes import make_batch
from saliency_core.zoo.shapes_net import CAM_LAYERS, ShapesNet, build_shapes_net, normalize

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent.parent / "assets" / "shapes_demo.safetensors"


def load_demo_model(path: str | Path = DEFAULT_WEIGHTS) -> ShapesNet:
    """:func:`build_shapes_net` with the weights at ``path`` loaded strictly, in eval mode."""
    from safetensors.torch import load_file

    model = build_shapes_net()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def gradcam(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor, layer: str = CAM_LAYERS[0]
) -> torch.Tensor:
    """Grad-CAM maps ``[N, H, W]`` (input resolution, no ReLU, unnormalised) for ``classes`` (``[N]`` ints)."""
    module = model.get_submodule(layer)
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        store["a"] = out

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            acts = store["a"]
            score = logits.gather(1, classes.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = (weights * acts).sum(1, keepdim=True).detach()
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def pointing_hit(saliency: np.ndarray | torch.Tensor, mask: np.ndarray, tolerance: float = 15.0) -> bool:
    """True when the argmax of ``saliency`` lies within ``tolerance`` px of the nearest ``mask`` pixel."""
    sal = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    y, x = np.unravel_index(int(np.argmax(sal)), sal.shape)
    if mask[y, x]:
        return True
    # distance from every pixel to the nearest mask pixel
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return bool(dist[y, x] <= tolerance)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """Predicted class indices for uint8 images ``[N, H, W, 3]``."""
    preds = []
    for i in range(0, len(images), batch_size):
        preds.append(model(normalize(torch.from_numpy(images[i : i + batch_size]))).argmax(1).numpy())
    return np.concatenate(preds) if preds else np.empty(0, np.int64)


def evaluate(
    model: nn.Module,
    seeds: Sequence[int],
    layer: str = CAM_LAYERS[0],
    tolerance: float = 15.0,
    batch_size: int = 50,
) -> dict[str, float]:
    """Accuracy and Grad-CAM pointing hit-rate (for the true class) on the scenes of ``seeds``."""
    model.eval()
    correct = hits = 0
    for i in range(0, len(seeds), batch_size):
        images, labels, masks = make_batch(seeds[i : i + batch_size])
        x = normalize(torch.from_numpy(images))
        y = torch.from_numpy(labels)
        with torch.no_grad():
            correct += int((model(x).argmax(1) == y).sum())
        cams = gradcam(model, x, y, layer)
        hits += sum(pointing_hit(cams[j], masks[j], tolerance) for j in range(len(labels)))
    n = max(len(seeds), 1)
    return {"accuracy": correct / n, "pointing": hits / n, "n": len(seeds)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--n", type=int, default=200, help="number of held-out scenes")
    p.add_argument("--start", type=int, default=HELDOUT_SEED_START, help="first held-out seed")
    p.add_argument("--layer", default=CAM_LAYERS[0])
    p.add_argument("--tolerance", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = load_demo_model(args.weights)
    res = evaluate(model, list(range(args.start, args.start + args.n)), args.layer, args.tolerance)
    res.update(
        seeds=f"{args.start}..{args.start + args.n - 1}", layer=args.layer, seconds=time.perf_counter() - t0
    )
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
