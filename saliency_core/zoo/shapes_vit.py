"""``ShapesViT``: a small torchvision ``VisionTransformer`` for the synthetic shape scenes.

It is a plain :class:`torchvision.models.VisionTransformer` (so everything written for torchvision ViTs, e.g.
capturing ``nn.MultiheadAttention`` in ``encoder.layers.encoder_layer_*``, works on it unchanged):
image 224, patch 16 (a 14x14 token grid plus the class token), :data:`LAYERS` encoder blocks of
:data:`HEADS` heads, width :data:`HIDDEN`, MLP :data:`MLP`.  The patch embedding is torchvision's own
convolutional stem option (``conv_stem_configs``, Xiao et al. 2021, "Early convolutions help transformers
see better"): four 3x3 stride-2 conv + BatchNorm + ReLU layers and a 1x1 conv to the width, one token per
16x16 patch as with the linear patchify.  Trained from scratch on CPU, a plain patchify ViT learns these
scenes much slower; the stem keeps every token local to its patch, so token maps still localise.

Input ``[N, 3, 224, 224]`` normalised with the same :data:`MEAN` / :data:`STD` as ``ShapesNet``.
:func:`forward_window` runs the same weights on a crop (a smaller token grid) with the matching window of
the position embedding: training uses it on 160 px crops.
"""

from __future__ import annotations

import torch
from torchvision.models import VisionTransformer
from torchvision.models.vision_transformer import ConvStemConfig

from saliency_core.zoo.scenes import SHAPE_CLASSES
from saliency_core.zoo.shapes_net import MEAN, STD, normalize

__all__ = ["CAM_LAYERS", "MEAN", "STD", "build_shapes_vit", "forward_window", "normalize"]

IMAGE_SIZE = 224
PATCH = 16
GRID = IMAGE_SIZE // PATCH
LAYERS = 4
HEADS = 4
HIDDEN = 96
MLP = 384
STEM: tuple[int, ...] = (24, 48, 96, 96)  # conv stem widths, each 3x3 stride 2 (16 = 2**4)
# Block outputs as a 14x14 token grid (class token dropped), last first; ln_1 mirrors vit_b_16's entry.
CAM_LAYERS: tuple[str, ...] = tuple(f"encoder.layers.encoder_layer_{i}.ln_1" for i in (3, 2, 1))


def build_shapes_vit(num_classes: int = len(SHAPE_CLASSES)) -> VisionTransformer:
    """A freshly initialised ShapesViT (load ``assets/shapes_vit_demo.safetensors`` into it)."""
    return VisionTransformer(
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        num_layers=LAYERS,
        num_heads=HEADS,
        hidden_dim=HIDDEN,
        mlp_dim=MLP,
        num_classes=num_classes,
        conv_stem_configs=[ConvStemConfig(out_channels=c, kernel_size=3, stride=2) for c in STEM],
    )


def forward_window(model: VisionTransformer, x: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """Logits for a crop ``x`` ``[N, 3, 16g, 16g]`` whose tokens use the position-embedding window at ``offset``.

    ``offset`` is ``(row, column)`` in tokens; ``model(x)`` on a 224 px input equals ``offset=(0, 0)``
    with ``g = 14``.  Same computation as ``VisionTransformer.forward`` (dropouts are 0).
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
    return model.heads(seq[:, 0])
