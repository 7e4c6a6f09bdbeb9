"""U²-Net and U²-Net-small (u2netp) for salient-object segmentation (Qin et al. 2020, Pattern Recognition).

Our implementation of the published architecture: nested residual U-blocks (RSU-7 ... RSU-4 with
pooling, RSU-4F with dilations instead), six encoder and five decoder stages, and six side outputs
fused by a 1x1 convolution. Attribute names follow the authors' release (stage1 ... stage6, stage5d
... stage1d, side1 ... side6, outconv; rebnconvin, rebnconv1 ..., rebnconv1d with conv_s1 / bn_s1
inside), so their u2net.pth and u2netp.pth state dicts load with strict key matching. Upsampling goes
to the skip connection's exact size, so any input size works. `forward` returns logits (d0, d1 ... d6),
fused map first; the release returns their sigmoids.

The weights are not downloadable here: place the published file in torchvision's cache folder
(TORCH_HOME/hub/checkpoints) under its published name, or load any file with `weights=<path>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsUnavailable
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .registry import ModelSpec, register
from .weights import cached_file_for, load_into, read_state_dict

U2NET_SIDE = 320  # the resolution U²-Net was trained at


class ConvBnRelu(nn.Module):
    """3x3 convolution (dilated), batch norm, ReLU ("REBNCONV" in the release)."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def upsample_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to like's spatial size."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """Residual U-block of height L: an input conv, then a small U-Net whose output is added to it.

    The encoder has L convolutions: the first L-1 at dilation 1 with 2x max-pooling between them, the
    last at dilation 2; the decoder mirrors it with L-1 convolutions on concatenated skips. RSU-4F
    (`dilated=True`) replaces pooling by dilations 1, 2, 4, 8 (encoder) and 4, 2, 1 (decoder).
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int, dilated: bool = False) -> None:
        super().__init__()
        self.height = height
        self.dilated = dilated
        self.rebnconvin = ConvBnRelu(in_ch, out_ch)
        for i in range(1, height + 1):
            dilation = 2 ** (i - 1) if dilated else (2 if i == height else 1)
            setattr(self, f"rebnconv{i}", ConvBnRelu(out_ch if i == 1 else mid_ch, mid_ch, dilation))
        for i in range(height - 1, 0, -1):
            dilation = 2 ** (i - 1) if dilated else 1
            setattr(self, f"rebnconv{i}d", ConvBnRelu(mid_ch * 2, out_ch if i == 1 else mid_ch, dilation))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        skips = []
        h = hxin
        for i in range(1, self.height):
            h = getattr(self, f"rebnconv{i}")(h)
            skips.append(h)
            if not self.dilated and i < self.height - 1:
                h = self.pool(h)
        h = getattr(self, f"rebnconv{self.height}")(h)
        for i in range(self.height - 1, 0, -1):
            h = getattr(self, f"rebnconv{i}d")(torch.cat((h, skips[i - 1]), 1))
            if not self.dilated and i > 1:
                h = upsample_like(h, skips[i - 2])
        return h + hxin


# (height, in, mid, out, dilated) per stage: encoder stage1..6, decoder stage5d..1d.
Stages = dict[str, tuple[int, int, int, int, bool]]
U2NET_STAGES: Stages = {
    "stage1": (7, 3, 32, 64, False),
    "stage2": (6, 64, 32, 128, False),
    "stage3": (5, 128, 64, 256, False),
    "stage4": (4, 256, 128, 512, False),
    "stage5": (4, 512, 256, 512, True),
    "stage6": (4, 512, 256, 512, True),
    "stage5d": (4, 1024, 256, 512, True),
    "stage4d": (4, 1024, 128, 256, False),
    "stage3d": (5, 512, 64, 128, False),
    "stage2d": (6, 256, 32, 64, False),
    "stage1d": (7, 128, 16, 64, False),
}
U2NETP_STAGES: Stages = {
    "stage1": (7, 3, 16, 64, False),
    "stage2": (6, 64, 16, 64, False),
    "stage3": (5, 64, 16, 64, False),
    "stage4": (4, 64, 16, 64, False),
    "stage5": (4, 64, 16, 64, True),
    "stage6": (4, 64, 16, 64, True),
    "stage5d": (4, 128, 16, 64, True),
    "stage4d": (4, 128, 16, 64, False),
    "stage3d": (5, 128, 16, 64, False),
    "stage2d": (6, 128, 16, 64, False),
    "stage1d": (7, 128, 16, 64, False),
}
# Which stage each side output reads: side1 <- stage1d, ..., side5 <- stage5d, side6 <- stage6.
SIDE_SOURCES = ("stage1d", "stage2d", "stage3d", "stage4d", "stage5d", "stage6")


class U2Net(nn.Module):
    """U²-Net: six encoder RSU stages, five decoder stages, six fused side outputs (logits)."""

    def __init__(self, stages: Stages = U2NET_STAGES, out_ch: int = 1) -> None:
        super().__init__()
        for name, (height, cin, mid, cout, dilated) in stages.items():
            setattr(self, name, RSU(height, cin, mid, cout, dilated))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        for i, source in enumerate(SIDE_SOURCES, start=1):
            setattr(self, f"side{i}", nn.Conv2d(stages[source][3], out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        encoded = []
        h = x
        for i in range(1, 6):
            h = getattr(self, f"stage{i}")(h)
            encoded.append(h)
            h = self.pool(h)
        h = self.stage6(h)
        decoded = {"stage6": h}
        for i in range(5, 0, -1):
            skip = encoded[i - 1]
            h = getattr(self, f"stage{i}d")(torch.cat((upsample_like(h, skip), skip), 1))
            decoded[f"stage{i}d"] = h
        sides = [getattr(self, f"side{i}")(decoded[s]) for i, s in enumerate(SIDE_SOURCES, start=1)]
        sides = [sides[0], *(upsample_like(s, sides[0]) for s in sides[1:])]
        fused = self.outconv(torch.cat(sides, 1))
        return (fused, *sides)


def u2net() -> U2Net:
    """U²-Net (44.0 M parameters), the layout of the published u2net.pth."""
    return U2Net(U2NET_STAGES)


def u2netp() -> U2Net:
    """U²-Net-small (1.13 M parameters), the layout of the published u2netp.pth."""
    return U2Net(U2NETP_STAGES)


@dataclass(frozen=True)
class UserSuppliedWeights:
    """Default weights that cannot be downloaded automatically: a file the user places in the cache folder."""

    file_name: str
    instructions: str

    @property
    def url(self) -> str:
        """Only its file name matters: the file is looked up in torchvision's cache folder."""
        return self.file_name

    def path(self) -> Path:
        return cached_file_for(self.file_name)


U2NET_README = "https://github.com/xuebinqin/U-2-Net"


def _instructions(file_name: str, size: str, drive_id: str) -> str:
    return (
        f"the authors publish {file_name} ({size}) on Google Drive, linked from the README of {U2NET_README} "
        f"(https://drive.google.com/file/d/{drive_id}/view). It cannot be downloaded automatically"
    )


def _build_u2net(factory: Callable[[], nn.Module], weights: UserSuppliedWeights | None) -> nn.Module:
    module = factory()
    if weights is None:
        return module
    path = weights.path()
    if not path.is_file():
        raise WeightsUnavailable(
            f"The weights file '{weights.file_name}' is not in {path.parent}: {weights.instructions}. Download "
            f"it on a machine with a browser and put it in that folder (or set TORCH_HOME to a folder whose "
            f"hub/checkpoints holds it), or load any copy with weights=<path to the file>.",
            file_name=weights.file_name,
            folder=str(path.parent),
        )
    return load_into(module, read_state_dict(path), f"The weights file {path}")


def _u2net_spec(
    model_id: str,
    title: str,
    factory: Callable[[], nn.Module],
    weights: UserSuppliedWeights,
    description: str,
) -> None:
    register(
        ModelSpec(
            id=model_id,
            task="salient_object",
            title=title,
            build=partial(_build_u2net, factory),
            layers=("stage2d", "stage1d", "stage3d", "stage4d", "stage5d", "stage6"),
            preprocess=Preprocess(
                resize=None,
                crop=None,
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                max_side=U2NET_SIDE,
                upscale=True,
                multiple=32,
            ),
            categories=lambda: ("salient object",),
            weights_enum=lambda: weights,
            description=description,
        )
    )


_u2net_spec(
    "u2net",
    "U²-Net (salient objects)",
    u2net,
    UserSuppliedWeights(
        "u2net.pth", _instructions("u2net.pth", "176 MB", "1ao1ovG1Qtx4b7EoskHXmi2E9rp5CHLcZ")
    ),
    "Nested U-structure salient-object segmenter; weights from a file you supply (u2net.pth).",
)
_u2net_spec(
    "u2netp",
    "U²-Net-small (salient objects)",
    u2netp,
    UserSuppliedWeights(
        "u2netp.pth", _instructions("u2netp.pth", "4.7 MB", "1rbSTGKAE-MTxBYHd-51l2hMOQPT_7EPy")
    ),
    "The 4.7 MB U²-Net (u2netp); weights from a file you supply (u2netp.pth).",
)
