"""Real photos for duplicate tests: scikit-image's sample photos (shipped in the wheel, no
download) and the copies a photo library fills up with."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

# colour photos (originals) and others (unrelated to them and to each other)
ORIGINALS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")
UNRELATED = ("camera", "coins", "moon", "brick", "grass", "gravel", "cell", "horse")
VARIANTS = ("jpeg60", "resize50", "exif_rot", "gray")
LONG_SIDE = 384


def photo(name: str) -> Image.Image:
    """A scikit-image sample photo as RGB, long side at most ``LONG_SIDE``."""
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = getattr(skimage.data, name)()
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
    image = Image.fromarray(a).convert("RGB")
    image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """An image file's bytes."""
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def variant(image: Image.Image, kind: str) -> bytes:
    """A copy of ``image``: JPEG quality 60, half size, pixels turned 90° with an EXIF
    orientation that turns them back, or grayscale."""
    if kind == "jpeg60":
        return encode(image, "JPEG", quality=60)
    if kind == "resize50":
        return encode(image.resize((image.width // 2, image.height // 2)))
    if kind == "exif_rot":
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90° clockwise to view": the pixels are turned back
        return encode(image.rotate(90, expand=True), "JPEG", quality=95, exif=exif)
    if kind == "gray":
        return encode(image.convert("L"))
    raise ValueError(kind)
