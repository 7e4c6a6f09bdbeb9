"""The CAM layer picker's options: every module with its output shape and the grid CAM reads from it,
suggestions first, and why a layer cannot be read (pooled vectors, 1×1 maps, per-head attention)."""

from __future__ import annotations

import torch
from torch import nn

import saliency_core as sc


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_every_module_with_shapes_worked_out_by_hand() -> None:
    model = sc.get_engine().resolve(Tiny().eval())
    options = {o.name: o for o in model.layer_options(torch.zeros(1, 3, 32, 48))}
    # One top-level block holds the convolutions: its convolution is the suggestion, listed first.
    assert next(iter(options)) == "features.0" and options["features.0"].suggested
    assert options["features.0"].grid == (4, 32, 48)
    assert options["features"].grid == (4, 16, 24) and not options["features"].suggested
    assert options["features"].describe() == "features · 4×16×24"
    assert options["pool"].grid is None and options["pool"].note == "1×1: no spatial extent"
    assert options["fc"].describe() == "fc · 2 · not a spatial map"
    assert options["unused"].shape is None and "not called" in options["unused"].note


def test_vit_tokens_read_as_a_grid_and_attention_internals_do_not() -> None:
    model = sc.load_model("timm:vit_tiny_patch16_224", weights=None)
    options = {o.name: o for o in model.layer_options()}
    block = options["blocks.11.norm1"]
    assert block.suggested and block.shape == (1, 197, 192) and block.grid == (192, 14, 14)
    assert block.describe() == "blocks.11.norm1 · 197 tokens × 192 → 192×14×14"
    assert options["patch_embed"].grid == (192, 14, 14)  # 196 tokens: no class token
    assert options["blocks.11.attn.q_norm"].grid is None  # [N, heads, tokens, dims]
    assert "per-head" in options["blocks.11.attn.q_norm"].note
    assert options["head"].grid is None
    assert len(options) == len(dict(model.module.named_modules())) - 1


def test_swin_channels_last_stages_are_permuted() -> None:
    model = sc.load_model("timm:swin_tiny_patch4_window7_224", weights=None)
    options = {o.name: o for o in model.layer_options()}
    assert options["layers.3"].shape == (1, 7, 7, 768) and options["layers.3"].grid == (768, 7, 7)
    assert options["layers.3"].describe() == "layers.3 · 7×7×768 → 768×7×7"
