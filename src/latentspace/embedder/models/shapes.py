"""Seeded generator of coloured-shape images with captions: the data behind ``tiny-shapes``.

Every image shows one shape of one colour on a low-saturation, slightly noisy background, at
a random position, size and rotation. Captions name the colour and the shape in one of several
templates; a small share of captions names only the colour or only the shape, so that the text
encoder also learns what "red" alone means (latent arithmetic needs it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "COLOURS",
    "SHAPES",
    "TEMPLATES",
    "ShapeSample",
    "caption_for",
    "draw_shape",
    "generate",
    "iter_samples",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (35, 165, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 215, 30),
    "purple": (135, 45, 185),
    "orange": (250, 135, 20),
    "pink": (250, 125, 195),
    "cyan": (30, 205, 215),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")

TEMPLATES: tuple[str, ...] = (
    "a {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a picture of a {colour} {shape}",
    "a drawing of a {colour} {shape}",
    "{colour} {shape}",
    "a {shape} that is {colour}",
    "the {colour} {shape}",
)
_COLOUR_ONLY: tuple[str, ...] = ("{colour}", "something {colour}", "a {colour} shape")
_SHAPE_ONLY: tuple[str, ...] = ("{shape}", "a {shape}", "a photo of a {shape}")


@dataclass(frozen=True)
class ShapeSample:
    """One generated image with its labels and a caption."""

    colour: str
    shape: str
    image: Image.Image
    caption: str


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        corners = [angle + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    if shape == "triangle":
        corners = [angle - math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            a = angle - math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
        return points
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def draw_shape(colour: str, shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Draw one ``colour`` ``shape`` on a random background; returns an RGB image ``size``²."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {sorted(COLOURS)}")
    scale = 2  # draw large, then downsample: cheap anti-aliasing
    big = size * scale
    grey = rng.uniform(40, 215)
    tint = rng.uniform(-12, 12, size=3)
    background = np.clip(grey + tint, 0, 255)
    noise = rng.normal(0.0, 6.0, size=(big, big, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.16, 0.36) * big
    cx = rng.uniform(r, big - r)
    cy = rng.uniform(r, big - r)
    jitter = rng.integers(-15, 16, size=3)
    fill = tuple(int(v) for v in np.clip(np.array(COLOURS[colour]) + jitter, 0, 255))
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        angle = rng.uniform(-0.35, 0.35)
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=fill)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def caption_for(
    colour: str, shape: str, rng: np.random.Generator, partial_rate: float = 0.0
) -> str:
    """A caption for a ``colour`` ``shape``; with probability ``partial_rate`` it names one only."""
    if partial_rate > 0 and rng.random() < partial_rate:
        if rng.random() < 0.5:
            return str(rng.choice(_COLOUR_ONLY)).format(colour=colour)
        return str(rng.choice(_SHAPE_ONLY)).format(shape=shape)
    return str(rng.choice(TEMPLATES)).format(colour=colour, shape=shape)


def iter_samples(
    n: int, seed: int, size: int = 64, partial_rate: float = 0.0
) -> Iterator[ShapeSample]:
    """Yield ``n`` samples cycling through every (colour, shape) pair, so classes stay balanced."""
    rng = np.random.default_rng(seed)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    for i in range(n):
        colour, shape = pairs[i % len(pairs)]
        image = draw_shape(colour, shape, rng, size)
        yield ShapeSample(colour, shape, image, caption_for(colour, shape, rng, partial_rate))


def generate(n: int, seed: int, size: int = 64, partial_rate: float = 0.0) -> list[ShapeSample]:
    """``n`` balanced samples drawn with ``seed`` (same seed, same images)."""
    return list(iter_samples(n, seed, size, partial_rate))
