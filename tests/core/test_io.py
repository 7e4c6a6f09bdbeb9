"""Image loading: formats, EXIF orientation, first GIF frame, and clear errors for bad input."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

import saliency_core as sc
import saliency_core.io as sio


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


@pytest.fixture
def small_limits():
    """Set limits for one test (sc.set_limits), restoring the previous ones afterwards."""
    previous = sc.limits()
    yield lambda **changes: sc.set_limits(previous, **changes)
    sc.set_limits(previous)


@pytest.fixture
def decode_calls(monkeypatch) -> list[str]:
    """Records every decode of an opened file's pixels (ImageFile.load and Image.load; images made in memory,
    being saved by the test, have no format), to prove refusals come before it."""
    calls: list[str] = []
    for cls in (Image.Image, ImageFile.ImageFile):
        original = cls.load

        def load(self, _original=original):
            if self.format:
                calls.append(self.format)
            return _original(self)

        monkeypatch.setattr(cls, "load", load)
    return calls


def _png_with_header(width: int, height: int) -> bytes:
    """A small valid RGB PNG whose IHDR claims another size (CRC fixed, so only the size is wrong)."""
    data = bytearray(_encode(Image.new("RGB", (4, 4)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_the_decode_recorder_sees_a_normal_load(decode_calls) -> None:
    sc.load_image(_encode(_gradient_image(), "PNG"))
    assert "PNG" in decode_calls


def test_too_many_pixels_is_refused_before_decoding(small_limits, decode_calls) -> None:
    small_limits(max_pixels=399)
    with pytest.raises(sc.ResourceLimit, match=r"too large: 20×20 pixels .*max_pixels") as caught:
        sc.load_image(_encode(_gradient_image(20, 20), "PNG"))
    assert isinstance(caught.value, sc.InvalidImage) and caught.value.limit == "max_pixels"
    assert decode_calls == []
    small_limits(max_pixels=400)
    assert sc.load_image(_encode(_gradient_image(20, 20), "PNG")).size == (20, 20)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("1", 100), ("L", 100), ("P", 100), ("LA", 200), ("I;16", 200), ("I;16B", 200), ("I", 400), ("F", 400),
     ("RGB", 400), ("RGBA", 400), ("CMYK", 400), ("YCbCr", 400)],
)  # fmt: skip
def test_decoded_bytes_per_mode(mode: str, expected: int) -> None:
    assert sio.decoded_bytes((10, 10), mode) == expected  # 3-band 8-bit modes are stored in 4 bytes


def test_decoded_bytes_are_refused_before_decoding(small_limits, decode_calls) -> None:
    data = _encode(Image.fromarray(np.zeros((100, 100), np.float32)), "TIFF")  # F: 40,000 bytes decoded
    small_limits(max_image_bytes=39_999)
    with pytest.raises(sc.ResourceLimit, match=r"too large: decoded \(100×100, mode F\).*max_image_bytes"):
        sc.load_image(data)
    assert decode_calls == []
    small_limits(max_image_bytes=40_000)
    assert sc.load_image(data).size == (100, 100)


def test_huge_declared_dimensions_say_too_large(decode_calls) -> None:
    for width, height in ((9000, 9000), (100_000, 100_000)):  # ours, then Pillow's own bomb error
        with pytest.raises(sc.InvalidImage, match="too large"):
            sc.load_image(_png_with_header(width, height))
    assert decode_calls == []


def test_pillows_bomb_limit_still_applies_when_ours_is_raised(small_limits) -> None:
    small_limits(max_pixels=10**12, max_image_bytes=10**13)
    with pytest.raises(sc.ResourceLimit, match=r"too large.*decompression bomb"):
        sc.load_image(_png_with_header(20_000, 20_000))


def test_zero_sized_images_are_refused() -> None:
    for width, height in ((0, 4), (4, 0)):
        with pytest.raises(sc.InvalidImage, match=r"damaged|no pixels"):
            sc.load_image(_png_with_header(width, height))
    with pytest.raises(sc.InvalidImage, match=r"no pixels \(its header says 0×5\)"):
        sio.check_header((0, 5), "RGB")


def test_files_bigger_than_any_allowed_image_are_not_read(small_limits, tmp_path) -> None:
    path = tmp_path / "big.bmp"
    _gradient_image(100, 100).save(path)  # about 30 KB
    small_limits(max_image_bytes=10_000)
    for source in (path, io.BytesIO(path.read_bytes())):
        with pytest.raises(sc.ResourceLimit, match="too large: The file is"):
            sc.load_image(source)


def test_png_text_chunk_bombs_are_reported_as_too_large() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)  # ~2 KB compressed
    with pytest.raises(sc.ResourceLimit, match="text metadata"):
        sc.load_image(_encode(Image.new("RGB", (4, 4)), "PNG", pnginfo=info))


def test_truncated_png_is_reported() -> None:
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    with pytest.raises(sc.InvalidImage, match="damaged or truncated"):
        sc.load_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PPM", "RGB"), ("TGA", "RGB"), ("ICO", "RGB"), ("PCX", "RGB"), ("SGI", "RGB"), ("DDS", "RGB"),
     ("QOI", "RGB"), ("IM", "RGB"), ("XBM", "1"), ("MSP", "1"), ("EPS", "RGB")],
)  # fmt: skip
def test_other_formats_are_refused_by_name(fmt: str, mode: str, decode_calls) -> None:
    data = _encode(Image.new(mode, (8, 8)), fmt)
    decode_calls.clear()  # writing an ICO decodes the PNG it embeds
    with pytest.raises(
        sc.InvalidImage, match=rf"This looks like a file in the {fmt} format; this tool reads PNG"
    ):
        sc.load_image(data)
    assert decode_calls == []  # refused by signature: EPS never reaches Ghostscript, ICO never decodes


def test_files_without_a_known_signature_get_the_general_message() -> None:
    with pytest.raises(sc.InvalidImage, match=r"not an image this tool can read \(PNG, JPEG"):
        sc.load_image(_encode(Image.new("F", (8, 8)), "SPIDER"))


def test_an_eps_header_alone_is_named() -> None:
    with pytest.raises(sc.InvalidImage, match="EPS format"):
        sc.load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")


def test_damaged_file_of_an_accepted_format_is_called_damaged() -> None:
    with pytest.raises(sc.InvalidImage, match="The PNG file is damaged"):
        sc.load_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)


def _float_tiff(values) -> bytes:
    return _encode(Image.fromarray(np.asarray(values, np.float32)), "TIFF")


def test_float_images_are_stretched_over_their_finite_values() -> None:
    img = sc.load_image(_float_tiff([[np.nan, 2.0, np.inf], [4.0, -np.inf, 6.0]]))
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img)[..., 0], [[0, 0, 0], [128, 0, 255]])
    assert img.info["saliency_note"] == "3 pixels were NaN or infinite and are shown black."


def test_a_single_non_finite_pixel_is_noted_in_the_singular() -> None:
    img = sc.load_image(_float_tiff([[0.0, np.nan], [1.0, 1.0]]))
    assert img.info["saliency_note"] == "1 pixel was NaN or infinite and is shown black."
    assert "saliency_note" not in sc.load_image(_float_tiff([[0.0, 1.0]])).info


def test_a_signalling_nan_is_counted_without_a_numpy_warning() -> None:
    values = np.array([[0.0, 1.0, 2.0]], np.float32)
    values.view(np.uint32)[0, 1] = 0x7F800001  # a signalling NaN, as a mutated float file can hold
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = sc.load_image(_float_tiff(values))
    np.testing.assert_array_equal(np.asarray(img)[0, :, 0], [0, 0, 255])
    assert img.info["saliency_note"].startswith("1 pixel was NaN")


def test_an_all_non_finite_image_is_refused() -> None:
    with pytest.raises(sc.InvalidImage, match="Every pixel of this image is NaN or infinite"):
        sc.load_image(_float_tiff([[np.nan, np.inf], [-np.inf, np.nan]]))


def test_float_extremes_do_not_overflow() -> None:
    img = sc.load_image(_float_tiff([[-3e38, 0.0, 3e38]]))
    np.testing.assert_array_equal(np.asarray(img)[0, :, 0], [0, 128, 255])


def test_high_bit_depth_greyscale_known_answers() -> None:
    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], np.uint16))
    assert sixteen.mode == "I;16"
    np.testing.assert_array_equal(
        np.asarray(sc.load_image(_encode(sixteen, "PNG")))[0], [[0] * 3, [128] * 3, [255] * 3]
    )
    twelve = Image.fromarray(np.array([[0, 1000, 4000]], np.uint16))  # 12-bit data: stretched, not dark
    np.testing.assert_array_equal(np.asarray(sc.load_image(_encode(twelve, "PNG")))[0, :, 0], [0, 64, 255])
    signed = Image.fromarray(np.array([[-100, 0, 300]], np.int32))
    np.testing.assert_array_equal(np.asarray(sc.load_image(_encode(signed, "TIFF")))[0, :, 0], [0, 64, 255])
    flat = Image.fromarray(np.full((2, 2), 500, np.uint16))  # constant: nothing to stretch, black
    assert np.asarray(sc.load_image(_encode(flat, "PNG"))).max() == 0


def test_one_pixel_and_modes_without_alpha() -> None:
    assert tuple(np.asarray(sc.load_image(_encode(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG")))[0, 0]) == (
        9,
        99,
        199,
    )
    assert tuple(np.asarray(sc.load_image(_encode(Image.new("L", (2, 2), 77), "PNG")))[0, 0]) == (77, 77, 77)
    assert tuple(np.asarray(sc.load_image(_encode(Image.new("1", (2, 2), 1), "BMP")))[0, 0]) == (
        255,
        255,
        255,
    )


@pytest.mark.parametrize(("cmyk", "rgb"), [((0, 0, 0, 0), (255, 255, 255)), ((255, 0, 0, 0), (0, 255, 255))])
def test_cmyk_jpeg_converts_as_pillow_does(cmyk, rgb) -> None:
    data = _encode(Image.new("CMYK", (8, 8), cmyk), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert np.abs(np.asarray(sc.load_image(data)).astype(int) - rgb).max() <= 3


def _transparent_variants() -> dict[str, bytes]:
    clear = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    grey_keyed = Image.new("L", (4, 4), 40)
    return {
        "RGBA PNG": _encode(clear, "PNG"),
        "LA PNG": _encode(Image.new("LA", (4, 4), (40, 0)), "PNG"),
        "P PNG": _encode(palette, "PNG", transparency=1),
        "P GIF": _encode(palette, "GIF", transparency=1),
        "L PNG keyed": _encode(grey_keyed, "PNG", transparency=40),
        "RGBA WebP": _encode(clear, "WEBP", lossless=True),
        "RGBA TIFF": _encode(clear, "TIFF"),
    }


@pytest.mark.parametrize("variant", list(_transparent_variants()))
def test_transparent_pixels_are_white_in_every_format(variant: str) -> None:
    img = sc.load_image(_transparent_variants()[variant])
    assert img.mode == "RGB" and np.all(np.asarray(img) == 255)


def test_half_transparent_pixels_are_blended_over_white() -> None:
    img = sc.load_image(_encode(Image.new("RGBA", (2, 2), (0, 0, 0, 128)), "PNG"))
    assert abs(int(np.asarray(img)[0, 0, 0]) - round(255 * 127 / 255)) <= 1


def _marked(width: int = 40, height: int = 30) -> Image.Image:
    """Black with a white 8×8 block at the top-left, to see where orientation moves it."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:8, :8] = 255
    return Image.fromarray(arr)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_exif_rotation_moves_the_pixels(fmt: str) -> None:
    options = {"exif": _orientation_exif(6)} if fmt == "JPEG" else {"tiffinfo": {0x0112: 6}}
    img = np.asarray(sc.load_image(_encode(_marked(), fmt, **options)))
    assert img.shape == (40, 30, 3)  # orientation 6: rotate 90° clockwise to display
    assert img[2, 27].min() > 200 and img[2, 2].max() < 50  # the block is now at the top-right


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_multi_page_tiff_gives_the_first_page() -> None:
    pages = [Image.new("RGB", (6, 6), c) for c in ((0, 200, 0), (200, 0, 0))]
    data = _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    assert tuple(np.asarray(sc.load_image(data))[3, 3]) == (0, 200, 0)


def test_only_the_note_is_kept_in_info() -> None:
    img = sc.load_image(_encode(_gradient_image(), "JPEG", exif=_orientation_exif(6)))
    assert img.info == {}
