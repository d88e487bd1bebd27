from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentspace.embedder import Encoder, decode_image, encode_image_files, load_image
from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.settings import EncoderSettings, LimitSettings

MAX_PIXELS = 40_000_000


def encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def sample_image(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_bomb(side: int = 20_000) -> bytes:
    """A real 20000×20000 greyscale PNG of zeros: 400 MB of pixels in a few hundred KB."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_allowed_formats_decode_to_rgb(fmt: str) -> None:
    image = decode_image(encoded(sample_image(), fmt), name="x", max_pixels=MAX_PIXELS)
    assert image.mode == "RGB"
    assert image.size == (40, 30)


def test_gif_first_frame_is_used() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = decode_image(data, name="anim.gif", max_pixels=MAX_PIXELS)
    r, _g, b = image.getpixel((4, 4))  # type: ignore[misc]
    assert r > 200
    assert b < 50


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encoded(sample_image(size=(40, 30)), "JPEG", exif=exif)
    assert decode_image(data, name="rotated.jpg", max_pixels=MAX_PIXELS).size == (30, 40)


def test_transparency_is_flattened_onto_white() -> None:
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image = decode_image(encoded(clear, "PNG"), name="clear.png", max_pixels=MAX_PIXELS)
    assert image.getpixel((0, 0)) == (255, 255, 255)


def bad_files(tmp_path: Path) -> dict[str, Path]:
    good_jpeg = encoded(sample_image(size=(64, 64)), "JPEG")
    contents = {
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "bomb.png": png_bomb(),
        "vector.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "notes.jpg": b"this is a text file, not a picture\n" * 20,
        "empty.png": b"",
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    "name", ["truncated.jpg", "bomb.png", "vector.svg", "notes.jpg", "empty.png"]
)
def test_bad_images_are_invalid_input_naming_the_file(tmp_path: Path, name: str) -> None:
    path = bad_files(tmp_path)[name]
    with pytest.raises(InvalidInput, match=name):
        load_image(path, max_pixels=MAX_PIXELS)


def test_bomb_is_a_limit_error_before_decoding() -> None:
    with pytest.raises(LimitExceeded, match="400000000 pixels"):
        decode_image(png_bomb(), name="bomb.png", max_pixels=MAX_PIXELS)


def test_pixel_limit_is_the_setting() -> None:
    data = encoded(sample_image(size=(100, 100)), "PNG")
    decode_image(data, name="ok.png", max_pixels=10_000)
    with pytest.raises(LimitExceeded, match="over the limit of 9999"):
        decode_image(data, name="big.png", max_pixels=9_999)


def test_byte_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encoded(sample_image(), "PNG"))
    with pytest.raises(LimitExceeded, match=r"a\.png"):
        load_image(path, max_pixels=MAX_PIXELS, max_bytes=10)


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope\.png"):
        load_image(tmp_path / "nope.png", max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_never_break_a_batch_of_good_ones(
    tmp_path: Path, tiny: Encoder, workers: int
) -> None:
    bad = bad_files(tmp_path)
    good = []
    for i in range(5):
        good.append(tmp_path / f"good{i}.png")
        good[-1].write_bytes(encoded(sample_image(size=(32 + i, 32)), "PNG"))
    paths = [good[0], *bad.values(), *good[1:]]
    settings = EncoderSettings(device="cpu", decode_workers=workers, batch_size=3)
    batches = list(encode_image_files(tiny, paths, settings=settings, limits=LimitSettings()))
    positions = [p for b in batches for p in b.positions]
    errors = {p: e for b in batches for p, e in b.errors.items()}
    assert positions == [0, 6, 7, 8, 9]
    assert sorted(errors) == [1, 2, 3, 4, 5]
    for position, error in errors.items():
        assert paths[position].name in str(error)
    vectors = np.concatenate([b.vectors for b in batches])
    assert vectors.shape == (5, tiny.dim)
    direct = tiny.encode_images([load_image(p, max_pixels=MAX_PIXELS) for p in good])
    np.testing.assert_allclose(vectors, direct, atol=1e-5)
