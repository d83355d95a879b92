"""load_image: bit depths, transparency, colour modes, EXIF orientation and clear errors for bad files."""

import inspect
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from rewardsds.representations.image import (
    DEFAULT_BACKGROUND,
    MAX_IMAGE_PIXELS,
    InputImageError,
    init_image,
    load_image,
)
from rewardsds.world.scenes import BACKGROUND

BG = np.array(BACKGROUND, dtype=np.float32)


def _png(path, width, height, colour_type, bit_depth, data: bytes = b"", raw_idat: bytes | None = None):
    """Write a PNG by hand (PIL cannot write 16-bit RGB or arbitrary headers). data: rows, big-endian."""
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    if raw_idat is None:
        stride = len(data) // height
        raw_idat = zlib.compress(b"".join(b"\x00" + data[i * stride:(i + 1) * stride] for i in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw_idat) + chunk(b"IEND", b""))
    return path


def _px(t: torch.Tensor, y: int = 0, x: int = 0) -> np.ndarray:
    return t[0, :, y, x].numpy()


def _check(t: torch.Tensor, size: int):
    assert t.shape == (1, 3, size, size) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1


# ---- bit depth -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1000, 32768, 65535])
def test_16bit_grey_png_is_scaled_by_its_bit_depth(tmp_path, value):
    path = _png(tmp_path / "g16.png", 8, 8, 0, 16, np.full((8, 8), value, dtype=">u2").tobytes())
    assert Image.open(path).mode == "I;16"
    t = load_image(path, 4)
    _check(t, 4)
    assert np.allclose(t.numpy(), value / 65535, atol=1e-4)


def test_16bit_grey_from_pil_and_big_endian(tmp_path):
    Image.fromarray(np.full((6, 6), 16384, dtype=np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.full((6, 6), 49152, dtype=">u2")).save(tmp_path / "b.png")  # mode I;16B in memory
    assert np.allclose(load_image(tmp_path / "a.png", 6).numpy(), 0.25, atol=1e-4)
    assert np.allclose(load_image(tmp_path / "b.png", 6).numpy(), 0.75, atol=1e-4)


def test_16bit_grey_gradient_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    t = load_image(tmp_path / "ramp.png", 16)
    assert np.allclose(t[0, 0, 0].numpy(), ramp[0] / 65535, atol=1e-4)  # same size: no resampling


def test_32bit_integer_and_float_greyscale(tmp_path):
    Image.new("I", (4, 4), 30000).save(tmp_path / "i16.tif")  # 16-bit values in a 32-bit container
    Image.fromarray(np.full((4, 4), 2**30, dtype=np.int32)).save(tmp_path / "i32.tif")
    Image.new("F", (4, 4), 0.25).save(tmp_path / "f.tif")
    assert np.allclose(load_image(tmp_path / "i16.tif", 4).numpy(), 30000 / 65535, atol=1e-4)
    assert np.allclose(load_image(tmp_path / "i32.tif", 4).numpy(), 0.5, atol=1e-4)
    assert np.allclose(load_image(tmp_path / "f.tif", 4).numpy(), 0.25, atol=1e-5)


def test_16bit_rgb_png(tmp_path):
    rgb = np.zeros((4, 4, 3), dtype=">u2")
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32768, 8192
    t = load_image(_png(tmp_path / "rgb16.png", 4, 4, 2, 16, rgb.tobytes()), 4)
    _check(t, 4)
    assert np.allclose(_px(t), [1.0, 0.5, 0.125], atol=1 / 255)


# ---- transparency --------------------------------------------------------------------------------

def test_default_background_is_the_world_backdrop():
    assert DEFAULT_BACKGROUND == BACKGROUND == (0.94, 0.94, 0.92)
    assert inspect.signature(init_image).parameters["colour"].default == BACKGROUND
    assert inspect.signature(load_image).parameters["background"].default == BACKGROUND


def test_rgba_transparent_half_transparent_and_opaque(tmp_path):
    a = np.zeros((8, 8, 4), dtype=np.uint8)
    a[:, 4:] = (255, 0, 0, 128)  # right half: half-transparent red; left half: fully transparent black
    a[0, 0] = (0, 0, 255, 255)  # one opaque blue pixel (away from the sampled pixels below)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png", 8)  # same size: pixels are not resampled
    _check(t, 8)
    assert np.allclose(_px(t, 4, 1), BG, atol=1e-5)
    w = 128 / 255
    assert np.allclose(_px(t, 4, 6), w * np.array([1, 0, 0]) + (1 - w) * BG, atol=1e-5)
    assert np.allclose(_px(t, 0, 0), [0, 0, 1], atol=1e-5)
    # A different background
    t = load_image(tmp_path / "a.png", 8, background=(0.0, 1.0, 0.0))
    assert np.allclose(_px(t, 4, 1), [0, 1, 0], atol=1e-5)
    assert np.allclose(_px(t, 4, 6), [w, 1 - w, 0], atol=1e-5)


def test_transparent_composite_survives_resizing(tmp_path):
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 64)).save(tmp_path / "tint.png")
    assert np.allclose(load_image(tmp_path / "clear.png", 16).numpy(), BG.reshape(1, 3, 1, 1), atol=1e-5)
    w = 64 / 255
    want = (w * np.array([1, 0, 0]) + (1 - w) * BG).reshape(1, 3, 1, 1)
    assert np.allclose(load_image(tmp_path / "tint.png", 16).numpy(), want, atol=1e-5)


def test_la_greyscale_with_alpha(tmp_path):
    a = np.zeros((4, 4, 2), dtype=np.uint8)
    a[:, :2] = (200, 0)
    a[:, 2:] = (200, 255)
    Image.fromarray(a, "LA").save(tmp_path / "la.png")
    t = load_image(tmp_path / "la.png", 4)
    assert np.allclose(_px(t, 1, 0), BG, atol=1e-5)
    assert np.allclose(_px(t, 1, 3), 200 / 255, atol=1e-5)


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_palette_with_transparency(tmp_path, ext):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    im.putpixel((3, 3), 1)
    im.save(tmp_path / f"p.{ext}", transparency=0)
    t = load_image(tmp_path / f"p.{ext}", 4)
    assert np.allclose(_px(t, 0, 0), BG, atol=1e-5)
    assert np.allclose(_px(t, 3, 3), [0, 0, 1], atol=1e-5)


def test_transparent_colour_key_in_greyscale_png(tmp_path):
    Image.new("L", (4, 4), 7).save(tmp_path / "l.png", transparency=7)
    Image.new("I;16", (4, 4), 7).save(tmp_path / "i16.png", transparency=7)
    assert np.allclose(load_image(tmp_path / "l.png", 4).numpy(), BG.reshape(1, 3, 1, 1), atol=1e-5)
    assert np.allclose(load_image(tmp_path / "i16.png", 4).numpy(), BG.reshape(1, 3, 1, 1), atol=1e-5)


# ---- colour modes --------------------------------------------------------------------------------

def test_cmyk_to_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "c.tif")  # pure cyan
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "r.jpg", quality=100)  # red, Adobe JPEG
    assert np.allclose(_px(load_image(tmp_path / "c.tif", 8)), [0, 1, 1], atol=1e-5)
    assert np.allclose(_px(load_image(tmp_path / "r.jpg", 8), 4, 4), [1, 0, 0], atol=4 / 255)


def test_palette_greyscale_and_bilevel(tmp_path):
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    p.save(tmp_path / "p.png")
    Image.new("L", (4, 4), 100).save(tmp_path / "l.png")
    Image.new("1", (4, 4), 1).save(tmp_path / "b.png")
    assert np.allclose(load_image(tmp_path / "p.png", 4).numpy(),
                       np.array([10, 200, 30]).reshape(1, 3, 1, 1) / 255, atol=1e-6)
    assert np.allclose(load_image(tmp_path / "l.png", 4).numpy(), 100 / 255, atol=1e-6)
    assert np.allclose(load_image(tmp_path / "b.png", 4).numpy(), 1.0, atol=1e-6)


def test_plain_rgb_matches_the_8bit_crop_and_bicubic_resize(tmp_path):
    a = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "x.png")
    want = Image.fromarray(a[:, 5:35]).resize((12, 12), Image.BICUBIC)
    want = torch.from_numpy(np.asarray(want).copy()).permute(2, 0, 1)[None].float() / 255
    t = load_image(tmp_path / "x.png", 12)
    _check(t, 12)
    assert torch.equal(t, want)


@pytest.mark.parametrize("orientation,red_side", [(1, "top"), (3, "bottom"), (6, "right"), (8, "left")])
def test_exif_orientation_is_applied(tmp_path, orientation, red_side):
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    a[:8] = (255, 0, 0)  # stored: red top half, blue bottom half
    a[8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=95)
    red = load_image(tmp_path / "o.jpg", 16)[0, 0].numpy()  # red channel, as displayed
    halves = {"top": red[:6].mean(), "bottom": red[10:].mean(), "left": red[:, :6].mean(), "right": red[:, 10:].mean()}
    assert halves[red_side] > 0.9
    assert min(halves.values()) < 0.1


# ---- errors --------------------------------------------------------------------------------------

def _error(path) -> str:
    with pytest.raises(InputImageError) as info:
        load_image(path, 8)
    return str(info.value)


def test_folder_and_missing_file(tmp_path):
    assert "is a folder, not an image file" in _error(tmp_path)
    assert "does not exist" in _error(tmp_path / "nope.png")


def test_zero_byte_and_non_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("these are not pixels\n")
    assert "empty file (0 bytes)" in _error(tmp_path / "empty.png")
    msg = _error(tmp_path / "notes.png")
    assert "cannot read" in msg and "not in an image format" in msg


def test_truncated_png(tmp_path):
    a = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    msg = _error(tmp_path / "cut.png")
    assert "damaged or truncated" in msg
    (tmp_path / "header.png").write_bytes(data[:20])  # cut inside the header
    assert "cannot read" in _error(tmp_path / "header.png")


@pytest.mark.parametrize("side", [9000, 12000, 100_000])
def test_too_many_pixels_and_decompression_bomb(tmp_path, side):
    # Only the header claims the size; no pixel data is ever decoded.
    path = _png(tmp_path / "bomb.png", side, side, 0, 8, raw_idat=zlib.compress(b"\x00" * 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning must not leak out
        msg = _error(path)
    assert str(MAX_IMAGE_PIXELS) in msg
    if side == 100_000:
        assert "decompression bomb" in msg
    else:
        assert f"{side}x{side} pixels" in msg


def test_errors_are_one_sentence(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello")
    for path in (tmp_path, tmp_path / "nope.png", tmp_path / "empty.png", tmp_path / "notes.png"):
        msg = _error(path)
        assert "\n" not in msg and msg.count(". ") == 0
