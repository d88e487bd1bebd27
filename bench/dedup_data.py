"""The data of ``bench_dedup.py``: scikit-image's photos, their variants and unrelated images.

Offline: the photos ship inside scikit-image (``skimage.data``; those pooch would download
are skipped).
"""

from __future__ import annotations

import io
import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

PHOTOS = (  # colour photos, grey photos, textures and graphics; the first N are originals
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "stereo_motorcycle", "camera", "coins", "moon", "page", "text", "clock",
    "brick", "grass", "gravel", "cell", "colorwheel", "logo", "horse", "microaneurysms",
    "shepp_logan_phantom", "checkerboard", "eagle", "brain", "kidney", "lily", "skin",
)  # fmt: skip
KINDS = ("identical", "jpeg60", "resize50", "crop90", "exif_rot", "gray", "colour")
LONG_SIDE = 1024


@dataclass(frozen=True)
class Sample:
    id: str
    data: bytes
    kind: str  # "original", a variant kind, or "unrelated"
    group: str  # the original's name; an unrelated image's own id
    stored: bool  # stored in the check collection of (a)


# -- data -----------------------------------------------------------------------------------
def as_image(a: np.ndarray) -> Image.Image:
    """An array as RGB or L (alpha over white, grey RGB as L), long side ≤ 1024."""
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
    image = Image.fromarray(a)
    if image.mode in ("RGBA", "LA"):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    if image.mode == "RGB" and np.ptp(a[..., :3].astype(int), axis=-1).max() == 0:
        image = image.convert("L")
    image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
    return image


def load_photos() -> tuple[dict[str, Image.Image], list[str]]:
    """The ``PHOTOS`` that load offline, and the names of those that do not."""
    import skimage.data

    found, missing = {}, []
    for name in PHOTOS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = getattr(skimage.data, name)()
        except Exception:  # a pooch fetch fails offline in several ways
            missing.append(name)
            continue
        found[name] = as_image(a[0] if isinstance(a, tuple) else a)  # motorcycle: left view
    return found, missing


def encode(image: Image.Image, fmt: str = "PNG", **kw: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    """How the server sees a file: EXIF orientation applied."""
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


def colour_shift(image: Image.Image) -> Image.Image:
    if image.mode == "L":  # a tint: what a colour shift does to a grey photo
        a = np.asarray(image.convert("RGB"), dtype=np.float32) * (1.15, 1.0, 0.8)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    hsv = np.asarray(image.convert("HSV")).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + 26) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.25, 0, 255)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def exif_rotated(image: Image.Image, orientation: int) -> bytes:
    """Pixels turned so that a viewer applying ``orientation`` (6 or 8) shows ``image``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    turned = image.rotate(90 if orientation == 6 else 270, expand=True)
    return encode(turned, "JPEG", quality=95, exif=exif)


def variants(image: Image.Image, png: bytes, i: int) -> dict[str, bytes]:
    w, h = image.size
    dx, dy = round(w * 0.05), round(h * 0.05)
    out = {
        "identical": png,
        "jpeg60": encode(image, "JPEG", quality=60),
        "resize50": encode(image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "crop90": encode(image.crop((dx, dy, w - dx, h - dy))),
        "exif_rot": exif_rotated(image, 6 if i % 2 == 0 else 8),
        "gray": encode(image.convert("L")) if image.mode != "L" else b"",
        "colour": encode(colour_shift(image)),
    }
    return {kind: data for kind, data in out.items() if data}


def smooth_field(rng: np.random.Generator, grid: int, size: int) -> Image.Image:
    cells = rng.integers(0, 256, (grid, grid, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((size, size), Image.Resampling.BICUBIC)


def build(n_originals: int) -> tuple[list[Sample], list[str], list[str]]:
    """Originals, their variants and 62 unrelated images; the originals; the missing photos."""
    import skimage.data

    photos, missing = load_photos()
    names = list(photos)[:n_originals]
    samples = []
    for i, name in enumerate(names):
        png = encode(photos[name])
        samples.append(Sample(f"o:{name}", png, "original", name, True))
        for kind, data in variants(photos[name], png, i).items():
            samples.append(Sample(f"v:{name}:{kind}", data, kind, name, False))
    other = {f"skimage-{n}": image for n, image in photos.items() if n not in names}
    faces = skimage.data.lfw_subset()  # type: ignore[no-untyped-call]  # 100 faces, then 100 non-face patches
    for j, (label, row) in itertools.product(range(24), (("face", 0), ("patch", 100))):
        other[f"lfw-{label}-{j}"] = as_image(faces[row + j]).resize((100, 100))
    rng = np.random.default_rng(7)
    other |= {f"field-{j}": smooth_field(rng, 6, 256) for j in range(max(0, 62 - len(other)))}
    for j, (uid, image) in enumerate(other.items()):
        samples.append(Sample(f"u:{uid}", encode(image), "unrelated", f"u:{uid}", j % 2 == 0))
    return samples, names, missing
