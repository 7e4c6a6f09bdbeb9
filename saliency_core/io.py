"""Reading images safely: only the promised formats, sizes checked from the header before any pixel is
decoded, high-bit-depth and float images converted without large temporaries, and messages a person can
act on.

What `load_image` returns, for every format and mode: an RGB image, EXIF orientation applied, the first
frame or page of animations and multi-page files, transparent pixels blended over white (BACKGROUND),
16-bit / 32-bit / float greyscale stretched from its lowest to its highest finite value onto 0..255 (a
constant image is black), NaN and infinite pixels black. `info` holds only NOTE_KEY, when there is
something the person should know (e.g. how many pixels were not finite).
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageMode, UnidentifiedImageError

from .errors import InvalidImage, ResourceLimit, SaliencyError
from .limits import Limits, limits

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # what the app promises; Image.open tries no other
SUPPORTED = "PNG, JPEG, WebP, BMP, TIFF or GIF"
BACKGROUND = (255, 255, 255)  # transparent pixels are blended over white, whatever the format or mode
NOTE_KEY = "saliency_note"  # image.info key of a note for the person (e.g. pixels that were NaN)
HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
STRIP_PIXELS = 1 << 20  # pixels of a high-depth image converted at a time: float64 scratch stays ~8 MiB
ADVICE = "Please downscale it, or save it with 8 bits per channel, and try again."

# Pillow's decoders raise these on malformed input (its own fuzzers accept the same set).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                 ZeroDivisionError, OverflowError)  # fmt: skip

# EXIF orientation -> the transpose that displays the image upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageTooLarge(ResourceLimit, InvalidImage):
    """An image over a size limit: a ResourceLimit that code catching InvalidImage also sees."""


def load_image(source: bytes | bytearray | str | os.PathLike | IO[bytes]) -> Image.Image:
    """An RGB PIL image, read as the module docstring describes.

    Raises InvalidImage for anything that is not a readable image in one of FORMATS, and ImageTooLarge
    (a ResourceLimit and an InvalidImage) when its pixels or decoded bytes are over `limits()`.
    """
    lim = limits()
    data = _read_bytes(source, lim)
    if not data:
        raise InvalidImage("The file is empty.")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        check_header(image.size, image.mode, lim)
        image.load()
        orientation = _orientation(image)
        note = ""
        if image.mode in HIGH_DEPTH:
            # Rebinding drops the high-depth original before the RGB copy is made.
            image, note = _stretch(image)
        image = _to_rgb(image)
    except SaliencyError:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(_unreadable_message(data)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own bomb limit (Image.MAX_IMAGE_PIXELS), met when an operator raised max_pixels past it.
        raise ImageTooLarge(f"The image is too large to read safely: {exc}", limit="max_pixels") from exc
    except DECODE_ERRORS as exc:
        if "text chunk" in str(exc).lower() or "MAX_TEXT" in str(exc):
            raise ImageTooLarge(
                "The image carries more text metadata than this tool reads safely (a PNG text chunk is "
                "too large). Please save it again without metadata.",
                limit="max_image_bytes",
            ) from exc
        raise InvalidImage(
            f"The image file is damaged or truncated and cannot be read ({str(exc)[:200]})."
        ) from exc
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    image.info = {NOTE_KEY: note} if note else {}
    return image


def decoded_bytes(size: tuple[int, int], mode: str) -> int:
    """Bytes Pillow holds for an image of this size and mode (3-band 8-bit modes are stored as 4 bytes)."""
    described = ImageMode.getmode(mode)
    per_pixel = np.dtype(described.typestr).itemsize * len(described.bands)
    if per_pixel == 3:
        per_pixel = 4
    return size[0] * size[1] * per_pixel


def check_header(size: tuple[int, int], mode: str, lim: Limits | None = None) -> None:
    """Refuse, before decoding, an image with no pixels or one over max_pixels or max_image_bytes.

    The bytes counted are the larger of the decoded image at its own depth and its RGB conversion.
    """
    lim = lim or limits()
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"The image has no pixels (its header says {width}×{height}).")
    try:
        lim.check(
            "max_pixels", width * height, f"{width}×{height} pixels", "Please downscale it and try again."
        )
        try:
            needed = max(decoded_bytes(size, mode), decoded_bytes(size, "RGB"))
        except (KeyError, TypeError) as exc:
            raise InvalidImage(f"The image's colour mode ({mode}) is not one this tool can read.") from exc
        lim.check("max_image_bytes", needed, f"decoded ({width}×{height}, mode {mode}), it", ADVICE)
    except ResourceLimit as exc:
        raise ImageTooLarge(f"The image is too large: {exc}", limit=exc.limit) from None


def _read_bytes(source: bytes | bytearray | str | os.PathLike | IO[bytes], lim: Limits) -> bytes:
    # A file bigger than the largest decoded image allowed cannot hold an acceptable image: refuse it
    # before reading it all into memory.
    most = lim.max_image_bytes
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImage(f"No image file at {path}.")
        _check_file_size(path.stat().st_size, lim)
        return path.read_bytes()
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        data = source.read(most + 1)
        if isinstance(data, str):
            raise InvalidImage("Expected image bytes, got text.")
        _check_file_size(len(data), lim)
        return bytes(data)
    raise InvalidImage(f"Cannot read an image from a {type(source).__name__}.")


def _check_file_size(size: int, lim: Limits) -> None:
    try:
        lim.check("max_image_bytes", size, "The file", "Please downscale the image first.")
    except ResourceLimit as exc:
        raise ImageTooLarge(f"The image is too large: {exc}", limit=exc.limit) from None


def _unreadable_message(data: bytes) -> str:
    """Name the format, when its signature is recognised, so the person knows what to convert."""
    name = _detected_format(data)
    if name in FORMATS:
        return f"The {name} file is damaged and cannot be read."
    if name is not None:
        return (
            f"This looks like a file in the {name} format; this tool reads {SUPPORTED}. "
            "Please convert it to one of those."
        )
    return f"This file is not an image this tool can read ({SUPPORTED})."


def _detected_format(data: bytes) -> str | None:
    """The format whose signature the bytes carry, from signatures only: another format's reader is
    never run, as some decode pixels while opening (ICO) and EPS's reach Ghostscript."""
    for name, found in _OWN_SIGNATURES.items():
        if found(data):
            return name
    Image.init()
    prefix = data[:16]  # what Image.open gives each plugin's signature check
    for name, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:  # a signature check must never turn a refusal into a crash
            continue
    return None


# Formats Pillow reads without a signature check of its own; checked first, as an uncompressed TGA file
# also starts like a CUR one.
_OWN_SIGNATURES = {
    "TGA": lambda data: data.endswith(b"TRUEVISION-XFILE.\x00"),
    "IM": lambda data: data.startswith(b"Image type:"),
}


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except DECODE_ERRORS:  # unreadable EXIF: show the pixels as stored
        return 1
    return value if isinstance(value, int) else 1


def _stretch(image: Image.Image) -> tuple[Image.Image, str]:
    """8-bit greyscale from a 16-bit, 32-bit or float one, a strip of rows at a time.

    Scaled from the lowest to the highest finite value (rounded); NaN and infinite pixels become 0.
    Working per strip in float64 keeps the scratch small and makes no step overflow, even for float32
    values near its range.
    """
    width, height = image.size
    rows = max(1, STRIP_PIXELS // width)
    strips = [(top, min(height, top + rows)) for top in range(0, height, rows)]
    lo, hi, bad = np.inf, -np.inf, 0
    for top, bottom in strips:
        values = _strip(image, top, bottom)
        finite = np.isfinite(values)
        count = int(np.count_nonzero(finite))
        bad += values.size - count
        if count:
            lo = min(lo, float(values.min(where=finite, initial=np.inf)))
            hi = max(hi, float(values.max(where=finite, initial=-np.inf)))
    if bad == width * height:
        raise InvalidImage("Every pixel of this image is NaN or infinite; there is nothing to show.")
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    grey = np.zeros((height, width), np.uint8)
    for top, bottom in strips:
        values = _strip(image, top, bottom)
        values -= lo
        values *= scale
        values[~np.isfinite(values)] = 0.0
        np.rint(values, out=values)
        np.clip(values, 0.0, 255.0, out=values)
        grey[top:bottom] = values
    note = ""
    if bad:
        were, are = ("was", "is") if bad == 1 else ("were", "are")
        note = f"{bad:,} pixel{'s' if bad != 1 else ''} {were} NaN or infinite and {are} shown black."
    return Image.fromarray(grey), note


def _strip(image: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Rows top..bottom as float64."""
    # Signalling NaNs (any bit pattern can be in a float file) raise numpy's "invalid value in cast"
    # warning when widened; they stay NaN and are counted as such, so the warning says nothing new.
    with np.errstate(invalid="ignore"):
        return np.asarray(image.crop((0, top, image.width, bottom)), dtype=np.float64)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with anything transparent blended over BACKGROUND (one rule for every mode and format)."""
    bands = image.getbands()
    if "A" in bands or "a" in bands or "transparency" in image.info:
        if image.mode not in ("RGBA", "LA"):  # premultiplied, palette and keyed modes: to plain RGBA
            image = _convert(image, "RGBA")
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(image, mask=image)  # pastes onto the 4-byte background, no RGBA copy
        return background
    return _convert(image, "RGB")


def _convert(image: Image.Image, mode: str) -> Image.Image:
    try:
        return image.convert(mode)
    except ValueError as exc:
        raise InvalidImage(f"The image's colour mode ({image.mode}) cannot be converted to RGB.") from exc
