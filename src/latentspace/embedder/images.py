"""Safe image decoding, in one place.

Everything that turns caller bytes into pixels goes through :func:`decode_image`: a format
allow-list (no SVG, no PDF, no exotic Pillow plugins), a pixel limit checked from the header
before any pixel is decoded (a decompression bomb is an error, not a warning), EXIF
orientation applied, RGB output with transparency flattened onto white. Any failure is an
:class:`~latentspace.errors.InvalidInput` that names the file.

:func:`iter_image_batches` is the bulk path: worker threads read, decode and preprocess
files while the caller's thread runs the model, so the encoder never waits for JPEG decoding.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

from latentspace.errors import InvalidInput
from latentspace.limits import over_limit

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALLOWED_FORMATS",
    "ImageBatch",
    "decode_image",
    "image_pixels",
    "iter_image_batches",
    "load_image",
    "perceptual_hash",
]

logger = logging.getLogger(__name__)

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _open_checked(data: bytes, name: str, max_pixels: int) -> Image.Image:
    # Parse the header only (Pillow decodes lazily) and check format and size.
    if not data:
        raise InvalidInput(f"{name}: empty file, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns below 2× its global limit; ours is the limit here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:  # Pillow's hard guard, above any limit allowed
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(found.group(1)) if found else max_pixels + 1
        raise over_limit("max_image_pixels", max_pixels, pixels, "pixels", name) from e
    except UnidentifiedImageError as e:
        raise InvalidInput(
            f"{name}: not a supported image; accepted formats are {', '.join(ALLOWED_FORMATS)}"
        ) from e
    except Exception as e:  # Pillow raises many types for hostile headers
        raise InvalidInput(f"{name}: cannot read image header: {e}") from e
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise over_limit(
            "max_image_pixels", max_pixels, width * height, f"pixels ({width}×{height})", name
        )
    return image


def image_pixels(data: bytes, *, name: str = "<bytes>", max_pixels: int) -> int:
    """Width × height from the header alone (nothing is decoded); the checks of
    :func:`decode_image` that need no decoding.

    Raises:
        InvalidInput: empty, not an allowed format, or an unreadable header.
        LimitExceeded: more than ``max_pixels`` pixels.
    """
    with _open_checked(data, name, max_pixels) as image:
        width, height = image.size
    return int(width * height)


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int) -> Image.Image:
    """Decode ``data`` into an RGB image.

    Args:
        data: the encoded file.
        name: how to name the input in errors (a file name or an item id).
        max_pixels: the largest width × height accepted.

    Raises:
        InvalidInput: empty, not an allowed format, corrupt or truncated.
        LimitExceeded: more than ``max_pixels`` pixels.
    """
    image = _open_checked(data, name, max_pixels)
    try:
        image.seek(0)  # first frame of an animation
        image.load()
        return _to_rgb(ImageOps.exif_transpose(image))
    except Exception as e:
        raise InvalidInput(f"{name}: corrupt or truncated {image.format} image: {e}") from e


def perceptual_hash(image: Image.Image) -> int:
    """The image's 64-bit DCT perceptual hash (``imagehash.phash``) as a signed integer,
    as a BIGINT column holds it. Re-encoding, resizing and grayscale move it by a few bits;
    unrelated photos lie 16 bits or more apart (``bench/bench_dedup.py``)."""
    value = int(str(imagehash.phash(image)), 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path, *, max_pixels: int, max_bytes: int | None = None) -> Image.Image:
    """Read and decode the file at ``path`` (see :func:`decode_image`).

    Raises:
        InvalidInput: unreadable, or not an acceptable image.
        LimitExceeded: over ``max_bytes`` or ``max_pixels``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise over_limit("max_image_bytes", max_bytes, size, "bytes", str(path))
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read file: {e.strerror or e}") from e
    return decode_image(data, name=str(path), max_pixels=max_pixels)


@dataclass
class ImageBatch:
    """Preprocessed pixels of the files that decoded, and the errors of those that did not."""

    positions: list[int]
    pixels: torch.Tensor | None
    errors: dict[int, InvalidInput] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    """One file's work for a decode worker: read, decode, preprocess."""

    preprocess: Callable[[Image.Image], torch.Tensor]
    max_pixels: int
    max_bytes: int | None

    def __call__(self, item: tuple[int, str]) -> tuple[int, torch.Tensor | InvalidInput]:
        position, path = item
        try:
            image = load_image(path, max_pixels=self.max_pixels, max_bytes=self.max_bytes)
            return position, self.preprocess(image)
        except InvalidInput as e:
            return position, e


def iter_image_batches(
    paths: Sequence[str | Path],
    preprocess: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int,
    max_pixels: int,
    max_bytes: int | None = None,
    workers: int = 2,
) -> Iterator[ImageBatch]:
    """Decode and preprocess ``paths`` on ``workers`` threads, yielding batches in order.

    Pillow and torch release the GIL while decoding, resizing and normalising, so threads
    decode in parallel without the start-up and pickling cost of processes (measured in
    bench/RESULTS.md). At most ``2 × batch_size`` files are in flight, so memory stays
    bounded on any number of files. A bad file never stops the run: it lands in its
    batch's ``errors`` under its position in ``paths``. ``workers=0`` decodes inline.
    """
    job = _Job(preprocess, max_pixels, max_bytes)
    items = [(i, str(p)) for i, p in enumerate(paths)]
    if workers == 0:
        yield from _collect(map(job, items), batch_size)
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    def ordered(pool: ThreadPoolExecutor) -> Iterator[tuple[int, torch.Tensor | InvalidInput]]:
        window: deque[Future[tuple[int, torch.Tensor | InvalidInput]]] = deque()
        pending = iter(items)
        for item in pending:
            window.append(pool.submit(job, item))
            if len(window) >= 2 * batch_size:
                break
        while window:
            yield window.popleft().result()
            for item in pending:
                window.append(pool.submit(job, item))
                break

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        yield from _collect(ordered(pool), batch_size)


def _collect(
    results: Iterator[tuple[int, torch.Tensor | InvalidInput]], batch_size: int
) -> Iterator[ImageBatch]:
    import torch as _torch

    positions: list[int] = []
    tensors: list[_torch.Tensor] = []
    errors: dict[int, InvalidInput] = {}
    count = 0
    for position, result in results:
        count += 1
        if isinstance(result, InvalidInput):
            errors[position] = result
        else:
            positions.append(position)
            tensors.append(result)
        if count == batch_size:
            yield ImageBatch(positions, _torch.stack(tensors) if tensors else None, errors)
            positions, tensors, errors, count = [], [], {}, 0
    if count:
        yield ImageBatch(positions, _torch.stack(tensors) if tensors else None, errors)
