"""Hand-weighted tiny models whose saliency maps can be worked out on paper, and the seeded random-init
torchvision classifiers that the cross-checks against captum and pytorch-grad-cam share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torchvision
from torch import nn


class LinearPixels(nn.Module):
    """logit_c = sum over pixels of W[c] * x: the gradient is W[c] everywhere, exactly."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        classes = weight.shape[0]
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(weight[0].numel(), classes, bias=True)
        with torch.no_grad():
            self.fc.weight.copy_(weight.reshape(classes, -1))
            self.fc.bias.fill_(0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


class TinyCam(nn.Module):
    """features = ReLU(1x1 identity conv), then global average pooling and a linear head.

    logit_c = sum_k w[c, k] * mean(A_k) + b_c, so d logit_c / dA_k = w[c, k] / (h * w) at every position.
    """

    def __init__(self, head: torch.Tensor) -> None:
        super().__init__()
        channels = head.shape[1]
        conv = nn.Conv2d(channels, channels, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        self.features = nn.Sequential(conv, nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(channels, head.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(head)
            self.fc.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


class SpatialHead(nn.Module):
    """features = 1x1 identity conv (no ReLU); logit = sum_{k,i,j} V[k, i, j] * A[k, i, j].

    The gradient at the layer is V itself, which varies over positions.
    """

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        channels = v.shape[0]
        conv = nn.Conv2d(channels, channels, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        self.features = nn.Sequential(conv)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(v.numel(), 1, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(v.reshape(1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.features(x)))


class RegionMean(nn.Module):
    """A single score: the mean of channel 0 over a fixed rectangle; blind outside it."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box
        self.scale = nn.Parameter(
            torch.ones(())
        )  # a parameter so hooks and 'unchanged' checks have something

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        return (self.scale * x[:, 0, y0:y1, x0:x1].mean(dim=(1, 2)))[:, None]


def random_classifier(name: str, size: int) -> tuple[nn.Module, torch.Tensor, int]:
    """The torchvision classifier `name`, random-init (seed 0) in eval mode, a seeded input [1, 3, size, size]
    and the class it predicts for that input."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = int(model(x).argmax())
    return model, x, target


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread while inside. Two threads on a shared, busy machine spend most of their time
    waiting at OpenMP barriers (a single-image ResNet-18 forward goes from ~20 ms to over a second)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
