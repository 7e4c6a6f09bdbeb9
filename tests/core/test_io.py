"""Image loading: formats, EXIF orientation, first GIF frame, and clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import saliency_core as sc


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _gradient_image(w: int = 40, h: int = 30) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return Image.fromarray(arr)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_formats_load_as_rgb(fmt: str) -> None:
    img = sc.load_image(_encode(_gradient_image(), fmt))
    assert img.mode == "RGB" and img.size == (40, 30)
    if fmt in ("PNG", "BMP", "TIFF"):
        assert np.array_equal(np.asarray(img), np.asarray(_gradient_image()))


def test_gif_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = sc.load_image(buf.getvalue())
    assert tuple(np.asarray(img)[0, 0]) == (255, 0, 0)


def test_exif_orientation_is_applied() -> None:
    image = _gradient_image(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img = sc.load_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert img.size == (30, 40)


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img = sc.load_image(_encode(rgba, "PNG"))
    assert tuple(np.asarray(img)[0, 0]) == (255, 255, 255)


def test_sixteen_bit_greyscale_is_stretched() -> None:
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    img = sc.load_image(_encode(Image.fromarray(arr), "PNG"))
    values = np.asarray(img)[..., 0]
    assert values.min() == 0 and values.max() == 255


def test_paths_and_file_objects(tmp_path) -> None:
    path = tmp_path / "x.png"
    _gradient_image().save(path)
    assert sc.load_image(path).size == (40, 30)
    assert sc.load_image(str(path)).size == (40, 30)
    with path.open("rb") as fh:
        assert sc.load_image(fh).size == (40, 30)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not an image|damaged"),
    ],
)
def test_bad_bytes_raise_invalid_image(data: bytes, message: str) -> None:
    with pytest.raises(sc.InvalidImage, match=message):
        sc.load_image(data)


def test_truncated_jpeg_is_reported() -> None:
    data = _encode(_gradient_image(200, 200), "JPEG")
    with pytest.raises(sc.InvalidImage):
        sc.load_image(data[: len(data) // 3])


def test_missing_path(tmp_path) -> None:
    with pytest.raises(sc.InvalidImage, match="No image file"):
        sc.load_image(tmp_path / "nope.png")


def test_decompression_bombs_are_refused(monkeypatch) -> None:
    import saliency_core.io as sio

    monkeypatch.setattr(sio, "MAX_PIXELS", 100)
    with pytest.raises(sc.InvalidImage, match="too large"):
        sc.load_image(_encode(_gradient_image(20, 20), "PNG"))
