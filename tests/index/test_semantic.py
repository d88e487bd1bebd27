"""Latent arithmetic and interpolation with tiny-shapes, through the FAISS index."""

from __future__ import annotations

import numpy as np
import pytest

from latentspace.embedder import Encoder
from latentspace.embedder.models.shapes import COLOURS, generate
from latentspace.index import FaissIndex, IndexSpec, Term, combine, slerp_path


@pytest.fixture(scope="module")
def shapes(tiny: Encoder) -> tuple[list[tuple[str, str]], np.ndarray]:
    samples = generate(320, seed=4242)  # held out: training used seed 1
    return [(s.colour, s.shape) for s in samples], tiny.encode_images([s.image for s in samples])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_arithmetic_changes_the_colour_through_the_index(
    kind: str, tiny: Encoder, shapes: tuple[list[tuple[str, str]], np.ndarray]
) -> None:
    labels, vectors = shapes
    index = FaissIndex(IndexSpec(kind), tiny.dim)
    index.add(np.arange(len(labels)), vectors)
    words = dict(zip(COLOURS, tiny.encode_text(list(COLOURS)), strict=True))
    correct = total = 0
    for i, (colour, shape) in enumerate(labels):
        for other in COLOURS:
            if other == colour:
                continue
            query = combine([Term(vectors[i]), Term(words[colour], -1.0), Term(words[other])])
            hits = index.search(query[None, :], 2).hits()
            best = next(item for item, _ in hits if item != i)
            correct += labels[best] == (other, shape)
            total += 1
    assert correct / total >= 0.90, f"{kind}: {correct}/{total}"


def test_slerp_path_changes_smoothly(
    tiny: Encoder, shapes: tuple[list[tuple[str, str]], np.ndarray]
) -> None:
    labels, vectors = shapes
    index = FaissIndex(IndexSpec("flat"), tiny.dim)
    index.add(np.arange(len(labels)), vectors)
    start = labels.index(("red", "circle"))
    end = labels.index(("blue", "square"))
    path = slerp_path(vectors[start], vectors[end], 9)
    nearest = [labels[i] for i in index.search(path, 1).ids[:, 0]]
    assert nearest[0] == ("red", "circle")
    assert nearest[-1] == ("blue", "square")
    to_start = path @ vectors[start]
    to_end = path @ vectors[end]
    assert (np.diff(to_start) < 0).all()
    assert (np.diff(to_end) > 0).all()
    # The items met on the way drift from start to end without going back: each is at least
    # as far from the start (and as near the end) as the one before, and it is a walk through
    # several items, not a jump.
    met = index.search(path, 1).ids[:, 0]
    assert (np.diff(vectors[met] @ vectors[start]) <= 0.02).all()
    assert (np.diff(vectors[met] @ vectors[end]) >= -0.02).all()
    assert len(set(met.tolist())) >= 3
