"""``ShapesNet``: a small CAM-friendly CNN for the synthetic shape scenes.

Layout (input ``[N, 3, 224, 224]``, normalised with :data:`MEAN` / :data:`STD` on the 0..1 scale)::

    stage1  conv 3x3/2, max-pool                    -> [N,  16, 56, 56]
    stage2  2 x conv 3x3, max-pool                  -> [N,  32, 28, 28]
    stage3  2 x conv 3x3, max-pool                  -> [N,  64, 14, 14]
    stage4  conv 3x3 (dilation 2), conv 3x3, no pool -> [N, 128, 14, 14]
    pool    AdaptiveAvgPool2d(1) + flatten          -> [N, 128]
    fc      Linear(128, num_classes)

Every conv is followed by BatchNorm and ReLU. The last stage stays at 14x14: its dilated conv widens the
receptive field without losing resolution, and the plain conv after it mixes neighbouring cells, which removes
the stripes that two stacked dilated convs leave in CAMs. The head is global average pooling + one linear
layer, so the classic CAM ``sum_k fc.weight[c, k] * stage4[k]`` is exact up to the bias and Grad-CAM localises
at 16-pixel granularity.
"""

from __future__ import annotations

import torch
from torch import nn

from saliency_core.zoo.scenes import SHAPE_CLASSES

MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.25, 0.25, 0.25)
CAM_LAYERS: tuple[str, ...] = ("stage4", "stage3", "stage2")
WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 128)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class ShapesNet(nn.Module):
    """Four conv stages, global average pooling and a single linear head ``fc`` (see the module docstring)."""

    def __init__(
        self, num_classes: int = len(SHAPE_CLASSES), widths: tuple[int, int, int, int] = WIDTHS
    ) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.stage1 = nn.Sequential(*_conv(3, w1, stride=2), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(*_conv(w1, w2), *_conv(w2, w2), nn.MaxPool2d(2))
        self.stage3 = nn.Sequential(*_conv(w2, w3), *_conv(w3, w3), nn.MaxPool2d(2))
        self.stage4 = nn.Sequential(*_conv(w3, w4, dilation=2), *_conv(w4, w4, dilation=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(w4, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last stage, ``[N, C, 14, 14]`` for a 224x224 input."""
        return self.stage4(self.stage3(self.stage2(self.stage1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


def build_shapes_net(num_classes: int = len(SHAPE_CLASSES)) -> ShapesNet:
    """A freshly initialised :class:`ShapesNet` (load ``assets/shapes_demo.safetensors`` into it)."""
    return ShapesNet(num_classes)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` (or float 0..255 ``[N, 3, H, W]``) -> normalised float ``[N, 3, H, W]``."""
    if images.dtype == torch.uint8 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    x = images.float() / 255.0
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
