"""Ground-truth masks read from files and aligned with a model's input (the same resize and crop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidImage
from ..io import load_image
from ..models import LoadedModel


def aligned_mask(model: LoadedModel, mask: np.ndarray | Path, image_size: tuple[int, int]) -> np.ndarray:
    """The bool mask [H, W] at the model's input resolution of a mask (array or file) drawn on an image
    of `image_size` (width, height); non-zero pixels are the object."""
    if isinstance(mask, Path):
        try:
            picture = np.asarray(load_image(mask).convert("L"))
        except InvalidImage as exc:
            raise InvalidImage(f"The mask {mask.name}: {exc}") from exc
    else:
        picture = np.asarray(mask).astype(np.uint8) * 255 if mask.dtype == bool else np.asarray(mask)
    if (picture.shape[1], picture.shape[0]) != tuple(image_size):
        raise InvalidImage(
            f"The mask is {picture.shape[1]}×{picture.shape[0]} but its image is "
            f"{image_size[0]}×{image_size[1]}."
        )
    binary = np.where(picture > 127, 255, 0).astype(np.uint8)
    # Through the model's own preprocessing, so the mask is resized and cropped exactly as the image.
    shown = model.to_image(model.preprocess(Image.fromarray(binary).convert("RGB")))
    return shown.mean(axis=2) > 127
