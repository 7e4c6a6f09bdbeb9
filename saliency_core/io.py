"""Reading images safely, with messages a person can act on."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImage

MAX_PIXELS = 64_000_000
SUPPORTED = "PNG, JPEG, WebP, BMP, TIFF or GIF"


def load_image(source: bytes | bytearray | str | os.PathLike | IO[bytes]) -> Image.Image:
    """An RGB PIL image with EXIF orientation applied (GIF/animated: the first frame).

    Raises InvalidImage for anything that is not a readable image.
    """
    data = _read_bytes(source)
    if not data:
        raise InvalidImage("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidImage(
                    f"The image is too large ({width}x{height} pixels); the limit is {MAX_PIXELS // 1_000_000} "
                    "megapixels. Please downscale it first."
                )
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image) or image
    except InvalidImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"This file is not an image this tool can read ({SUPPORTED}).") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImage(f"The image file is damaged or truncated and cannot be read ({exc}).") from exc
    if width == 0 or height == 0:
        raise InvalidImage("The image has no pixels.")
    return _to_rgb(image)


def _read_bytes(source: bytes | bytearray | str | os.PathLike | IO[bytes]) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImage(f"No image file at {path}.")
        return path.read_bytes()
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read()
        if isinstance(data, str):
            raise InvalidImage("Expected image bytes, got text.")
        return bytes(data)
    raise InvalidImage(f"Cannot read an image from a {type(source).__name__}.")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High-bit-depth greyscale: stretch to 8 bits instead of clipping to white.
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
