"""Pictures: any image as uint8 RGB, a coloured map blended over it, tiles composed into a titled grid, and
PNG encoding."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colormaps import apply_colormap
from .maps import as_map, resize_map


def to_rgb_uint8(image: Any) -> np.ndarray:
    """An HxWx3 uint8 picture from a PIL image or an HxW / HxWx3 / HxWx4 array."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"Expected an HxWx3 image, got shape {array.shape}.")
    array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def overlay(
    image: Any, map01: Any, cmap: str = "inferno", alpha: float = 0.5, alpha_by_value: bool = False
) -> np.ndarray:
    """The coloured map blended over the picture: (1 - alpha) * image + alpha * colour, as uint8.

    The map is resized to the picture if needed. With `alpha_by_value` the opacity also scales with the
    map's value, so low-saliency pixels show the picture unchanged.
    """
    picture = to_rgb_uint8(image)
    values = resize_map(np.clip(as_map(map01), 0.0, 1.0), picture.shape[:2])
    colour = apply_colormap(values, cmap).astype(np.float32)
    weight = float(np.clip(alpha, 0.0, 1.0))
    weights = (values * weight)[..., None] if alpha_by_value else weight
    blended = (1.0 - weights) * picture.astype(np.float32) + weights * colour
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the small bitmap font still works
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def grid(
    tiles: Sequence[Any],
    titles: Sequence[str] | None = None,
    columns: int = 4,
    tile_size: int | None = None,
    pad: int = 8,
    font_size: int = 14,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Pictures side by side in rows of `columns`, each under its title, as one uint8 RGB picture.

    Tiles are resized to `tile_size` (the first tile's size by default) so differently sized maps line up.
    """
    pictures = [to_rgb_uint8(t) for t in tiles]
    if not pictures:
        raise ValueError("grid() needs at least one tile.")
    titles = list(titles) if titles is not None else [""] * len(pictures)
    if len(titles) != len(pictures):
        raise ValueError(f"{len(pictures)} tiles but {len(titles)} titles.")
    th, tw = (tile_size, tile_size) if tile_size else pictures[0].shape[:2]
    columns = max(1, min(columns, len(pictures)))
    rows = -(-len(pictures) // columns)
    title_h = font_size + 8 if any(titles) else 0
    width = columns * tw + (columns + 1) * pad
    height = rows * (th + title_h) + (rows + 1) * pad
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    for i, (picture, title) in enumerate(zip(pictures, titles)):
        r, c = divmod(i, columns)
        x = pad + c * (tw + pad)
        y = pad + r * (th + title_h + pad)
        if title:
            draw.text((x, y + 2), _fit_text(draw, title, tw, font), fill=(30, 30, 30), font=font)
        tile = Image.fromarray(picture)
        if tile.size != (tw, th):
            tile = tile.resize((tw, th), Image.Resampling.BILINEAR)
        canvas.paste(tile, (x, y + title_h))
    return np.asarray(canvas)


def png_bytes(image: Any, max_side: int | None = None) -> bytes:
    """A picture encoded as compressed PNG, optionally downscaled so its longer side is at most `max_side`."""
    picture = Image.fromarray(to_rgb_uint8(image))
    if max_side and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
