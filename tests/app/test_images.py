"""Accepting images: the formats the uploader offers, and clear refusals for the rest."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import saliency_core as sc
from ui import images


def _encode(fmt: str, **options) -> bytes:
    array = np.zeros((40, 60, 3), np.uint8)
    array[10:30, 20:40] = (200, 50, 50)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_offered_format_is_read(fmt: str) -> None:
    choice = images.read(_encode(fmt), f"x.{fmt.lower()}", "upload")
    assert (choice.width, choice.height) == (60, 40) and len(choice.digest) == 64


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    choice = images.read(buffer.getvalue(), "anim.gif", "upload")
    assert sc.load_image(choice.data).getpixel((4, 4))[0] > 200


def test_oversized_and_unreadable_files_are_refused_with_a_reason() -> None:
    with pytest.raises(sc.InvalidImage, match="limit is 25 MB"):
        images.read(b"\0" * (images.MAX_BYTES + 1), "huge.png", "upload")
    with pytest.raises(sc.InvalidImage, match="not an image"):
        images.read(b"%PDF-1.4 not an image", "paper.png", "upload")
    with pytest.raises(sc.InvalidImage, match="empty"):
        images.read(b"", "empty.png", "upload")
