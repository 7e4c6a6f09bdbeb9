"""Fuzzing load_image with mutated real image bytes: it returns a bounded RGB image or a SaliencyError.

Seeds are a bundled sample (downscaled) and small generated images in every accepted format and the
modes that take special paths (16-bit, RGBA, float, palette, CMYK, animated, multi-page). Mutations flip,
insert, delete, truncate and overwrite bytes, and set a PNG's declared size with a valid CRC so that
the size reaches the header check instead of failing the checksum.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import saliency_core as sc

MAX_PIXELS = 200_000  # tight, so that no mutated header makes a test allocate much
MAX_IMAGE_BYTES = 2 * 1024**2


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _base_picture() -> Image.Image:
    """A bundled photo at 32×24, or a generated gradient where no samples are installed."""
    photos = [s for s in sc.list_samples() if s.path.is_file()]
    if photos:
        with Image.open(photos[0].path) as image:
            return image.convert("RGB").resize((32, 24))
    arr = np.zeros((24, 32, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, 24, dtype=np.uint8)[:, None]
    return Image.fromarray(arr)


def _seeds() -> list[bytes]:
    picture = _base_picture()
    frames = [picture, picture.transpose(Image.Transpose.ROTATE_180)]
    floats = np.linspace(-1, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    floats[0, :3] = (np.nan, np.inf, -np.inf)
    return [
        _encode(picture, "PNG"),
        _encode(picture, "JPEG", quality=80),
        _encode(picture, "WEBP", quality=80),
        _encode(picture, "BMP"),
        _encode(picture, "TIFF"),
        _encode(picture, "GIF"),
        _encode(picture.convert("RGBA"), "PNG"),
        _encode(Image.fromarray(np.asarray(picture.convert("L"), np.uint16) * 257), "PNG"),
        _encode(Image.fromarray(floats), "TIFF"),
        _encode(picture.convert("CMYK"), "JPEG"),
        _encode(picture.convert("P"), "PNG", transparency=0),
        _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate"),
    ]


SEEDS = _seeds()
U32 = st.sampled_from([0, 1, 255, 0x7FFF, 0xFFFF, 100_000, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(
    0, 2**32 - 1
)


def _png_resized(data: bytes, width: int, height: int) -> bytes:
    """`data` (a PNG) with its IHDR size replaced and the chunk's CRC made right again."""
    if not data.startswith(b"\x89PNG") or len(data) < 33:
        return data
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + data[33:]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite", "header", "png_size"])
        )
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            data[at : at + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), draw(U32))
        elif kind == "header":  # the size fields of BMP, GIF, TIFF and WebP all lie in the first bytes
            at = draw(st.integers(0, min(64, len(data))))
            data[at : at + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), draw(U32))
        else:
            data[:] = _png_resized(bytes(data), draw(U32), draw(U32))
    return bytes(data)


@pytest.fixture(scope="module", autouse=True)
def tight_limits():
    previous = sc.set_limits(max_pixels=MAX_PIXELS, max_image_bytes=MAX_IMAGE_BYTES)
    yield
    sc.set_limits(previous)


def test_every_seed_loads_unmutated() -> None:
    for data in SEEDS:
        image = sc.load_image(data)
        assert image.mode == "RGB" and image.size in ((32, 24), (24, 32))


@pytest.mark.timeout(120)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=mutated())
def test_mutated_images_load_bounded_or_raise_a_saliency_error(data: bytes) -> None:
    try:
        image = sc.load_image(data)
    except sc.SaliencyError as exc:
        assert isinstance(exc, (sc.InvalidImage, sc.ResourceLimit)) and str(exc)
        return
    width, height = image.size
    assert image.mode == "RGB" and width > 0 and height > 0
    assert width * height <= MAX_PIXELS and width * height * 3 <= MAX_IMAGE_BYTES
    assert set(image.info) <= {"saliency_note"}


@pytest.mark.timeout(60)
@settings(max_examples=60, deadline=None)
@given(width=U32, height=U32)
def test_any_declared_png_size_is_refused_before_it_is_allocated(width: int, height: int) -> None:
    data = _png_resized(SEEDS[0], width, height)
    if width * height > MAX_PIXELS:
        with pytest.raises(sc.ResourceLimit, match="too large"):
            sc.load_image(data)
        return
    try:  # within the limit: read (a smaller size uses part of the pixel data) or damaged, nothing else
        assert sc.load_image(data).size == (width, height)
    except sc.InvalidImage as exc:
        assert "too large" not in str(exc)
