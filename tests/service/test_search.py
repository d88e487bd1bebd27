"""Vector search with a filter: the allow-list and the post-filter paths agree."""

from __future__ import annotations

import pytest
from tests.fixtures import DIM, items, vectors

from latentspace.service import Context, collections
from latentspace.service import items as item_service
from latentspace.service import search as search_module
from latentspace.service.search import search_vector


def test_filtered_search_both_paths(space: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    x = vectors(300, seed=1)
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(x))
    wanted = {"n": {"$lt": 50}}
    by_allow_list = search_vector(space, "c", x[200], k=5, filter=wanted)
    monkeypatch.setattr(search_module, "ALLOW_LIST_LIMIT", 10)
    monkeypatch.setattr(search_module, "ALLOW_LIST_SHARE", 0.0)
    by_post_filter = search_vector(space, "c", x[200], k=5, filter=wanted)
    assert [h.id for h in by_allow_list] == [h.id for h in by_post_filter]
    assert all(h.metadata["n"] < 50 for h in by_allow_list)
    assert len(by_allow_list) == 5
