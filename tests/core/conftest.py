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


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    """A small random-init torchvision ViT (64 px, 4x4 patches of 16) for the attention methods, with a
    non-zero head (torchvision starts it at zero, which would make every gradient zero)."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    with torch.no_grad():
        model.heads.head.weight.normal_(0, 0.2)
    return model.eval()
