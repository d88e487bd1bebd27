"""Writing and deleting items: a write is searched at once and a delete hides it; a bad
vector, query, filter or index kind is refused and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fixtures import DIM, count, items, vectors

from latentspace.errors import DimensionMismatch, InvalidInput, NotFound
from latentspace.service import Context, collections
from latentspace.service import items as item_service
from latentspace.service.search import search_vector


def test_write_search_delete(space: Context) -> None:
    x = vectors(200)
    collections.create(space, "c", dim=DIM, index="hnsw")
    outcomes = item_service.write(space, "c", items(x))
    assert {o.status for o in outcomes} == {"created"}
    hits = search_vector(space, "c", x[5], k=3)
    assert hits[0].id == "v5"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].metadata == {"n": 5}
    assert item_service.delete(space, "c", ["v5", "v6"]) == 2
    assert "v5" not in {h.id for h in search_vector(space, "c", x[5], k=10)}
    assert count(space, "c") == 198


def test_bad_input(space: Context) -> None:
    collections.create(space, "c", dim=DIM)
    with pytest.raises(DimensionMismatch):
        item_service.write(space, "c", items(np.ones((1, 3), np.float32)))
    with pytest.raises(InvalidInput, match="zero vector"):
        item_service.write(space, "c", items(np.zeros((1, DIM), np.float32)))
    with pytest.raises(InvalidInput, match="NaN"):
        search_vector(space, "c", np.full(DIM, np.nan))
    with pytest.raises(InvalidInput, match="invalid filter key"):
        search_vector(space, "c", vectors(1)[0], filter={"x;drop": 1})
    with pytest.raises(NotFound):
        search_vector(space, "nope", vectors(1)[0])
    with pytest.raises(InvalidInput, match="unknown index kind"):
        collections.create(space, "d", dim=DIM, index="annoy")
    assert count(space, "c") == 0
