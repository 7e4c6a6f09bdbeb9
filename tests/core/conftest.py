"""Fixtures shared by the engine tests: a random-init ResNet-18 (10 classes) and a 64×64 input."""

from __future__ import annotations

import pytest
import torch
import torchvision


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
