"""Hand-built toy models for the detection, segmentation and salient-object tasks.

Each looks only at one rectangle of the image: its score is a function of the pixels inside it, so
every faithful saliency map must put its mass there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from saliency_core.models.loaded import LoadedModel
from saliency_core.models.preprocess import IDENTITY
from saliency_core.models.registry import ModelSpec


class RegionFeatures(nn.Module):
    """features = ReLU(mean of RGB - 0.3) as 4 identical channels; `evidence` = their mean inside `box`."""

    def __init__(self, box: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.box = box
        conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = 1.0 / 3.0
            conv.bias.fill_(-0.3)
        self.features = nn.Sequential(conv, nn.ReLU())

    @staticmethod
    def stack(images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return images if isinstance(images, torch.Tensor) and images.ndim == 4 else torch.stack(list(images))

    def evidence(self, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        return self.features(self.stack(images))[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))


class ToyDetector(RegionFeatures):
    """Two detections per image: class 1 at `box`, score sigmoid(10 * evidence - 3), and a decoy of class
    2 at `decoy` with a constant score. Inputs: a batch tensor or a list of [3, H, W] images."""

    def __init__(self, box: tuple[int, int, int, int], decoy: tuple[int, int, int, int]) -> None:
        super().__init__(box)
        self.decoy = decoy

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        scores = torch.sigmoid(10.0 * self.evidence(images) - 3.0)
        boxes = torch.tensor([self.box, self.decoy], dtype=torch.float32)
        return [
            {
                "boxes": boxes.clone(),
                "scores": torch.stack([s, s.new_tensor(0.9)]),
                "labels": torch.tensor([1, 2]),
            }
            for s in scores
        ]


class ToyPoseDetector(RegionFeatures):
    """One person at `box` whose 17 keypoint heatmaps (logits, 8x8 over the box) are 10 x the features
    pooled over the box's cells (channel k % 4): keypoints sit on the brightest cell."""

    def forward(self, images: torch.Tensor | list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        x0, y0, x1, y1 = self.box
        features = self.features(self.stack(images))[:, :, y0:y1, x0:x1]
        cells = 10.0 * F.adaptive_avg_pool2d(features, 8)  # [N, 4, 8, 8]
        heatmaps = cells[:, [k % 4 for k in range(17)]]  # [N, 17, 8, 8]
        out = []
        for maps in heatmaps:
            flat = maps.detach().flatten(1)
            best = flat.argmax(1)
            cx = x0 + ((best % 8).float() + 0.5) * (x1 - x0) / 8
            cy = y0 + ((best // 8).float() + 0.5) * (y1 - y0) / 8
            out.append(
                {
                    "boxes": torch.tensor([self.box], dtype=torch.float32),
                    "scores": torch.sigmoid(maps.mean())[None],
                    "labels": torch.tensor([1]),
                    "keypoints": torch.stack([cx, cy, torch.ones(17)], dim=1)[None],
                    "keypoints_scores": flat.max(1).values[None],
                    "keypoint_heatmaps": maps[None],
                }
            )
        return out


class ToySegmenter(RegionFeatures):
    """Logits [N, 3, H, W]: background 0 everywhere; class 1 = 10 * evidence - 3 inside `box`, -5 outside;
    class 2 = -5. With `channels=1` a salient-object map: 10 * evidence - 3 inside, -5 outside."""

    def __init__(self, box: tuple[int, int, int, int], channels: int = 3) -> None:
        super().__init__(box)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x0, y0, x1, y1 = self.box
        inside = torch.zeros(h, w)
        inside[y0:y1, x0:x1] = 1
        thing = (10.0 * self.evidence(x) - 3.0)[:, None, None] * inside - 5.0 * (1 - inside)
        if self.channels == 1:
            return thing[:, None]
        return torch.stack([torch.zeros_like(thing), thing, torch.full_like(thing, -5.0)], dim=1)


def toy_model(engine: object, module: nn.Module, task: str, categories: tuple[str, ...]) -> LoadedModel:
    """A LoadedModel around a toy module: identity preprocessing, CAM layer 'features'."""
    spec = ModelSpec(
        id=f"toy_{task}",
        task=task,
        title=f"Toy {task} model",
        build=lambda _weights: module,
        layers=("features",),
        preprocess=IDENTITY,
        categories=lambda: categories,
    )
    return LoadedModel(module.eval(), engine=engine, spec=spec)  # type: ignore[arg-type]


def scene(size: int, box: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """[1, 3, size, size]: dim texture (values < 0.3, below the toys' threshold) with bright noise in `box`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, size, size, generator=g) * 0.25
    x0, y0, x1, y1 = box
    x[:, :, y0:y1, x0:x1] = 0.5 + 0.5 * torch.rand(1, 3, y1 - y0, x1 - x0, generator=g)
    return x
