"""Image -> tensor preprocessing, and the inverse for drawing maps over exactly what the model saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from ..errors import InvalidImage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image or an HxWx3 (or HxW) uint8 array."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImage(f"Expected an HxWx3 image array, got shape {array.shape}.")
    if array.dtype != np.uint8:
        if (
            np.issubdtype(array.dtype, np.floating)
            and array.size
            and array.max() <= 1.0
            and array.min() >= 0.0
        ):
            array = (array * 255.0).round()
        array = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(array[..., :3])


@dataclass(frozen=True)
class Preprocess:
    """Resize (shorter side), centre-crop, scale to [0, 1], normalise; `crop=None` keeps the whole frame.

    `max_side` bounds the longer side instead (detection-style inputs of any aspect ratio); with
    `upscale` smaller images are enlarged to it too, and `multiple` rounds both sides to a multiple of
    that many pixels (so a detector's internal resize and padding leave the input unchanged, and CAM
    grids line up with the image).
    """

    resize: int | None = 256
    crop: int | None = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    max_side: int | None = None
    upscale: bool = False
    multiple: int | None = None

    def __call__(self, image: Image.Image | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        pil = to_pil(image)
        mode = InterpolationMode(self.interpolation)
        if self.max_side is not None:
            w, h = pil.size
            scale = self.max_side / max(w, h)
            if scale < 1.0 or self.upscale:
                w, h = max(1, round(w * scale)), max(1, round(h * scale))
            if self.multiple:
                w, h = (max(self.multiple, round(v / self.multiple) * self.multiple) for v in (w, h))
            if (w, h) != pil.size:
                pil = pil.resize((w, h), Image.Resampling.BILINEAR)
        elif self.resize is not None:
            pil = TF.resize(pil, [self.resize], interpolation=mode, antialias=True)
        if self.crop is not None:
            pil = TF.center_crop(pil, [self.crop, self.crop])
        tensor = TF.pil_to_tensor(pil).float().div_(255.0)
        tensor = TF.normalize(tensor, list(self.mean), list(self.std))
        return tensor.unsqueeze(0).to(device)

    def to_image(self, x: torch.Tensor) -> np.ndarray:
        """The uint8 HxWx3 image a preprocessed tensor [1, 3, H, W] (or [3, H, W]) shows."""
        t = x.detach().float().cpu()
        if t.ndim == 4:
            t = t[0]
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        t = (t * std + mean).clamp(0, 1)
        return (t.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)

    def black(self, like: torch.Tensor) -> torch.Tensor:
        """The tensor of an all-black image (0 in pixel space) shaped like `like`."""
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        return ((0.0 - mean) / std).expand_as(like).clone()

    def value_range(self) -> tuple[float, float]:
        """The smallest and largest value a preprocessed pixel can take."""
        lo = min((0.0 - m) / s for m, s in zip(self.mean, self.std))
        hi = max((1.0 - m) / s for m, s in zip(self.mean, self.std))
        return lo, hi


IDENTITY = Preprocess(resize=None, crop=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def from_weights_enum(weights: Any) -> Preprocess:
    """The preprocessing a torchvision weights enum's transforms describe (resize, crop, mean, std)."""
    t = weights.transforms()
    return Preprocess(
        resize=int(t.resize_size[0]),
        crop=int(t.crop_size[0]),
        mean=tuple(t.mean),
        std=tuple(t.std),
        interpolation=t.interpolation.value,
    )
