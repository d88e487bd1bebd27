"""The hit cache: searches show what was last committed, read no SQL once warm, and keep
to their memory budget."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, event

from latentspace.live import Commit, HitCache, HitRow
from latentspace.service import Context, collections, lifecycle
from latentspace.service import items as item_service
from latentspace.service.search import search_vector
from latentspace.settings import Settings
from latentspace.store import reads
from latentspace.store.repository import ItemInput

DIM = 16


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def inputs(x: np.ndarray, **metadata: object) -> list[ItemInput]:
    return [
        ItemInput(f"v{i}", "vector", f"sha{i}", v, metadata={"n": i, **metadata})
        for i, v in enumerate(x)
    ]


def start(engine: Engine, data_dir: Path, opened: list[Context], **search: object) -> Context:
    settings = Settings(
        data_dir=data_dir, database_url=engine.url.render_as_string(False), search=search
    )
    opened.append(lifecycle.start(settings, engine=engine, warm=True))
    return opened[-1]


def filled(space: Context, n: int, seed: int) -> np.ndarray:
    """Collection ``c`` holding ``n`` unit vectors ``v0…``, each with metadata ``{"n": i}``."""
    x = unit(n, seed=seed)
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", inputs(x))
    return x


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs inside the block."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_search_shows_every_committed_change(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    space = start(engine, tmp_path / "data", opened)
    x = filled(space, 50, seed=0)
    assert search_vector(space, "c", x[3], k=1)[0].metadata == {"n": 3}
    item_service.update_metadata(space, "c", "v3", {"tag": "red"})
    assert search_vector(space, "c", x[3], k=1)[0].metadata == {"n": 3, "tag": "red"}
    item_service.write(space, "c", inputs(x[:5], tag="blue"))  # same vectors, new metadata
    assert search_vector(space, "c", x[3], k=1)[0].metadata == {"n": 3, "tag": "blue"}
    item_service.delete(space, "c", ["v3"])
    assert "v3" not in [h.id for h in search_vector(space, "c", x[3], k=5)]
    hit = search_vector(space, "c", x[4], k=1)[0]
    hit.metadata["n"] = 99  # a caller's change to a hit is not the cache's
    assert search_vector(space, "c", x[4], k=1)[0].metadata["n"] == 4


def test_warm_cache_searches_read_no_sql(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    first = start(engine, tmp_path / "data", opened)
    x = filled(first, 300, seed=1)
    lifecycle.stop(first)
    opened.remove(first)
    space = start(engine, tmp_path / "data", opened)  # a restart: warmed from SQL
    assert space.warmer is not None
    assert space.warmer.wait(60)  # after start-up, in the background
    assert space.live.hits.used_bytes > 0
    search_vector(space, "c", x[0], k=1)  # the collection's row, read once and kept
    with statements(engine) as seen:
        hits = [search_vector(space, "c", v, k=10) for v in x[:20]]
    assert seen == []
    assert [h[0].id for h in hits] == [f"v{i}" for i in range(20)]
    assert all(h[0].metadata == {"n": i} for i, h in enumerate(hits))


def test_off_reads_sql_every_search(engine: Engine, tmp_path: Path, opened: list[Context]) -> None:
    space = start(engine, tmp_path / "data", opened, hit_cache_mb=0)
    x = filled(space, 40, seed=2)
    space.live.expiries.expired(collections.get(space, "c"), 0.0)  # built once, not per search
    with statements(engine) as seen:
        assert search_vector(space, "c", x[7], k=3)[0].id == "v7"
        assert search_vector(space, "c", x[7], k=3)[0].id == "v7"
    assert sum("FROM items" in s for s in seen) == 2
    assert space.live.hits.used_bytes == 0


def test_budget_keeps_the_most_recently_shown(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    space = start(engine, tmp_path / "data", opened)
    filled(space, 100, seed=3)
    collection = collections.get(space, "c")
    size = HitRow.of(1, "v10", {"n": 10}, None, None, None, "sha10").size()
    cache = HitCache(space.sessions, budget_bytes=10 * size)
    assert cache.warm(collection) == 10  # the newest ten that fit
    cache.rows(collection, [1, 2, 3])  # read from SQL and kept, evicting the oldest shown
    assert cache.used_bytes <= 10 * size
    with statements(engine) as seen:
        rows = cache.rows(collection, [1, 2, 3])
    assert seen == []
    assert [rows[i].external_id for i in (1, 2, 3)] == ["v0", "v1", "v2"]


def test_a_read_that_races_a_write_is_not_kept(
    engine: Engine, tmp_path: Path, opened: list[Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    space = start(engine, tmp_path / "data", opened)
    filled(space, 10, seed=4)
    collection = collections.get(space, "c")
    cache = HitCache(space.sessions, budget_bytes=2**20)
    hit_rows = reads.hit_rows

    def slow_read(**kwargs: object) -> object:
        rows = hit_rows(**kwargs)  # the old row is read; then a write commits and lands
        row = HitRow.of(1, "v0", {"n": "new"}, None, None, None, "s")
        cache.committed(collection, Commit(rows=[row]))
        return rows

    monkeypatch.setattr(reads, "hit_rows", slow_read)
    assert cache.rows(collection, [1])[1].metadata == {"n": 0}  # shown as read...
    monkeypatch.setattr(reads, "hit_rows", hit_rows)
    assert cache.rows(collection, [1])[1].metadata == {"n": "new"}  # ...but not kept
