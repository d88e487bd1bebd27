"""Measure a CLIP encoder on held-out tiny-shapes draws: the numbers in the model card.

Two metrics, both on images the model never saw (a seed not used in training):

- text→image precision@5: for every (colour, shape) the caption "a {colour} {shape}" is
  matched against all held-out images; the share of the top 5 that have both labels right.
- arithmetic accuracy: for every held-out image of a (colour, shape) and every other colour
  c', the query normalise(image − text(colour) + text(c')) is matched against the held-out
  images (the query image left out); correct when the nearest image is a c' shape of the same
  shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentspace.embedder.base import Encoder
from latentspace.embedder.models.shapes import COLOURS, SHAPES, generate

__all__ = ["HELDOUT_SEED", "ShapesMetrics", "measure_tiny_shapes"]

HELDOUT_SEED = 20_261_123  # never used by the training script


@dataclass(frozen=True)
class ShapesMetrics:
    """Held-out quality of an encoder on coloured shapes."""

    precision_at_5: float
    arithmetic_accuracy: float
    n_images: int
    n_arithmetic_queries: int


def _normalise(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


def measure_tiny_shapes(
    encoder: Encoder, *, per_class: int = 10, seed: int = HELDOUT_SEED, image_size: int = 64
) -> ShapesMetrics:
    """Re-measure precision@5 and arithmetic accuracy of ``encoder`` on fresh draws."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    samples = generate(per_class * len(pairs), seed=seed, size=image_size)
    labels = [(s.colour, s.shape) for s in samples]
    images = encoder.encode_images([s.image for s in samples])

    captions = encoder.encode_text([f"a {c} {s}" for c, s in pairs])
    hits = 0
    for row, pair in enumerate(pairs):
        top5 = np.argsort(-(images @ captions[row]))[:5]
        hits += sum(labels[i] == pair for i in top5)
    precision = hits / (5 * len(pairs))

    colour_names = list(COLOURS)
    colour_vecs = dict(zip(colour_names, encoder.encode_text(colour_names), strict=True))
    correct = total = 0
    for i, (colour, shape) in enumerate(labels):
        others = [c for c in colour_names if c != colour]
        queries = _normalise(
            images[i][None, :]
            - colour_vecs[colour][None, :]
            + np.stack([colour_vecs[c] for c in others])
        )
        scores = queries @ images.T
        scores[:, i] = -np.inf
        for target, best in zip(others, scores.argmax(axis=1), strict=True):
            correct += labels[best] == (target, shape)
            total += 1
    return ShapesMetrics(
        precision_at_5=precision,
        arithmetic_accuracy=correct / total,
        n_images=len(samples),
        n_arithmetic_queries=total,
    )
