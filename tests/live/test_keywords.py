"""The keyword leg follows SQL: every write, from this process or another, and restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.fixtures import DIM, vectors

from latentspace.errors import InvalidInput
from latentspace.service import Context, collections, lifecycle, replica
from latentspace.service import items as item_service
from latentspace.service.search import Query, search
from latentspace.service.terms import QueryTerm
from latentspace.settings import Settings
from latentspace.store.repository import ItemInput

TEXTS = [
    "The sort() method sorts the list in place.",
    "sorted() returns a new sorted list from the items in iterable.",
    "Dictionaries are sometimes found in other languages as associative memories.",
    "Sorting is guaranteed to be stable.",
]


def _start(engine: Engine, folder: Path, opened: list[Context]) -> Context:
    settings = Settings(data_dir=folder, database_url=engine.url.render_as_string(False))
    opened.append(lifecycle.start(settings, engine=engine))
    return opened[-1]


@pytest.fixture
def space(engine: Engine, tmp_path: Path, opened: list[Context]) -> Context:
    ctx = _start(engine, tmp_path / "a", opened)
    collections.create(ctx, "docs", dim=DIM)
    x = vectors(len(TEXTS))
    item_service.write(
        ctx,
        "docs",
        [ItemInput(f"d{i}", "vector", f"sha{i}", x[i], text=t) for i, t in enumerate(TEXTS)],
    )
    return ctx


def keyword(ctx: Context, words: str, k: int = 10, min_seq: int | None = None) -> list[str]:
    answer = search(ctx, "docs", Query([QueryTerm(keyword=words)], k=k, min_seq=min_seq))
    return [h.id for h in answer.hits]


def test_a_new_text_without_a_new_vector_is_searched_by_its_new_words(space: Context) -> None:
    assert keyword(space, "dictionaries") == ["d2"]
    v = vectors(len(TEXTS))[2]  # the same vector and hash: only the text changes
    item_service.write(space, "docs", [ItemInput("d2", "vector", "sha2", v, text="Hash maps.")])
    assert keyword(space, "dictionaries") == []
    assert keyword(space, "hash maps") == ["d2"]


def test_writes_through_another_process_are_seen(
    space: Context, engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    other = _start(engine, tmp_path / "b", opened)  # its own folder, the same database
    assert keyword(other, "sorted") == keyword(space, "sorted")
    x = vectors(6, seed=3)
    item_service.write(space, "docs", [ItemInput("d9", "vector", "s9", x[0], text="zebra")])
    item_service.delete(space, "docs", ["d2"])
    seq = replica.written_seq(space, "docs")  # read-your-writes from another process
    assert keyword(other, "zebra", min_seq=seq) == ["d9"]
    assert keyword(other, "dictionaries") == []


def test_a_restart_rebuilds_the_leg_from_sql(
    space: Context, engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    before = keyword(space, "sorted list")
    assert space.lock is not None
    space.lock.release()
    again = _start(engine, tmp_path / "a", opened)
    assert keyword(again, "sorted list") == before
    assert set(before) == {"d0", "d1", "d3"}  # "Sorting" stems to "sort"


def test_a_keyword_term_outside_search_is_refused(space: Context) -> None:
    from latentspace.service import directions

    with pytest.raises(InvalidInput, match="keyword term"):
        directions.create(
            space, "docs", "d", [QueryTerm(keyword="a")], [QueryTerm(vector=[1.0] * DIM)]
        )
    with pytest.raises(InvalidInput, match="weight"):
        search(space, "docs", Query([QueryTerm(keyword="sorted", weight=-1)]))
    assert "d0" in keyword(space, 'title:("sort" AND -key)~2')  # no query syntax: words
