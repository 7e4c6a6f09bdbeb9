"""``ShapesViT``: a small hybrid vision transformer for the synthetic shape scenes.

It is a :class:`torchvision.models.VisionTransformer` (so everything written for torchvision ViTs, e.g.
capturing ``nn.MultiheadAttention`` in ``encoder.layers.encoder_layer_*``, works on it unchanged): image
224, patch 16 (a 14x14 token grid plus the class token), :data:`LAYERS` encoder blocks of :data:`HEADS`
heads, width :data:`HIDDEN`, MLP :data:`MLP`.  Its patch embedding ``conv_proj`` is a convolutional trunk,
as in the ViT paper's hybrid models (Dosovitskiy et al. 2021, "hybrid architecture": tokens from a CNN
feature map): the four stages of ``ShapesNet`` (stride 16, so one 128-d vector per 16x16 patch) and a 1x1
conv to the width.  Training starts the trunk from the bundled ShapesNet weights and keeps it fixed: from
scratch on CPU a conv-stem ViT of this size stayed at chance level for 25k training images (also
with distillation from ShapesNet), while the transformer on these tokens learns its attention pooling in minutes.

Input ``[N, 3, 224, 224]`` normalised with the same :data:`MEAN` / :data:`STD` as ``ShapesNet``.
:func:`forward_window` runs the same weights on a crop (a smaller token grid) with the matching window of
the position embedding: training uses it on crops.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import VisionTransformer

from saliency_core.zoo.scenes import SHAPE_CLASSES
from saliency_core.zoo.shapes_net import MEAN, STD, WIDTHS, ShapesNet, normalize

__all__ = ["CAM_LAYERS", "MEAN", "STD", "build_shapes_vit", "forward_window", "normalize"]

IMAGE_SIZE = 224
PATCH = 16
GRID = IMAGE_SIZE // PATCH
LAYERS = 4
HEADS = 4
HIDDEN = 96
MLP = 192
TRUNK: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage4")  # ShapesNet's, in conv_proj
# Block outputs as a 14x14 token grid (class token dropped), last first; ln_1 mirrors vit_b_16's entry.
CAM_LAYERS: tuple[str, ...] = tuple(f"encoder.layers.encoder_layer_{i}.ln_1" for i in (3, 2, 1))


def build_shapes_vit(num_classes: int = len(SHAPE_CLASSES)) -> VisionTransformer:
    """A freshly initialised ShapesViT (load ``assets/shapes_vit_demo.safetensors`` into it)."""
    model = VisionTransformer(
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        num_layers=LAYERS,
        num_heads=HEADS,
        hidden_dim=HIDDEN,
        mlp_dim=MLP,
        num_classes=num_classes,
    )
    cnn = ShapesNet(num_classes)
    trunk = [(name, cnn.get_submodule(name)) for name in TRUNK]
    # torchvision's forward only calls conv_proj(x) and reads its [N, D, 14, 14] output as tokens
    model.conv_proj = nn.Sequential(OrderedDict([*trunk, ("proj", nn.Conv2d(WIDTHS[-1], HIDDEN, 1))]))
    return model


def forward_window(
    model: VisionTransformer, x: torch.Tensor, offset: tuple[int, int], all_tokens: bool = False
) -> torch.Tensor:
    """Logits for a crop ``x`` ``[N, 3, 16g, 16g]`` whose tokens use the position-embedding window at ``offset``.

    ``offset`` is ``(row, column)`` in tokens; ``model(x)`` on a 224 px input equals ``offset=(0, 0)``
    with ``g = 14``.  Same computation as ``VisionTransformer.forward`` (dropouts are 0).  ``all_tokens``:
    the encoder's output sequence ``[N, 1 + g * g, D]`` (class token first) instead of the logits, for
    training's token losses (the logits are ``model.heads(seq[:, 0])``).
    """
    n = x.shape[0]
    tokens = model.conv_proj(x)  # [N, D, g, g]
    g = tokens.shape[-1]
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = model.encoder.pos_embedding  # [1, 1 + GRID * GRID, D]
    r, c = offset
    window = pos[:, 1:].reshape(1, GRID, GRID, -1)[:, r : r + g, c : c + g].reshape(1, g * g, -1)
    cls = model.class_token.expand(n, -1, -1) + pos[:, :1]
    seq = torch.cat([cls, tokens + window], dim=1)
    seq = model.encoder.ln(model.encoder.layers(model.encoder.dropout(seq)))
    return seq if all_tokens else model.heads(seq[:, 0])
