"""Two servers on one database: each applies what the other writes (the SQL oplog).

Both apps run in this process but share nothing except the database and (for the replica
case) the data directory: each has its own engine, indexes, hit cache and collection cache,
as two worker processes or two hosts would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import make_settings, pair

from latentspace.settings import ClusterSettings

DIM = 8
BASE = "/v1/collections/c"


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def still(tmp_path: Path, engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    """Two servers sharing one data directory whose followers never poll on their own (an
    hour apart): what one sees of the other's writes comes from ``min_seq`` alone."""
    yield from pair(tmp_path, engine, shared_dir=True, poll_ms=3_600_000)


@pytest.fixture
def polling(tmp_path: Path, engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    """Two hosts on one database (each its own data directory), polling every 50 ms."""
    yield from pair(tmp_path, engine, shared_dir=False, poll_ms=50)


def write(c: TestClient, x: np.ndarray, ids: list[str], **extra: Any) -> int:
    items = [{"id": i, "vector": v.tolist(), **extra} for i, v in zip(ids, x, strict=True)]
    r = c.post(f"{BASE}/items", json={"items": items})
    assert r.status_code == 200, r.text
    assert r.headers["x-latentspace-seq"] == str(r.json()["seq"])
    return int(r.json()["seq"])


def top(c: TestClient, v: np.ndarray, *, min_seq: int | None = None, k: int = 1) -> Any:
    body: dict[str, Any] = {"query": {"vector": v.tolist()}, "k": k}
    if min_seq is not None:
        body["consistency"] = {"min_seq": min_seq}
    r = c.post(f"{BASE}/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def eventually(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not seen within the deadline"
        time.sleep(0.05)


def test_a_write_through_one_is_read_through_the_other_with_min_seq(
    still: tuple[TestClient, TestClient], engine: Engine
) -> None:
    a, b = still
    assert a.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
    x = unit_rows(40, seed=1)
    seq = write(a, x[:20], [f"i{n}" for n in range(20)], metadata={"v": 1})
    # b opens the collection now, from SQL: it holds the first 20
    assert top(b, x[5])[0]["id"] == "i5"
    later = write(a, x[20:], [f"i{n}" for n in range(20, 40)])
    assert later > seq
    if engine.dialect.name == "sqlite":
        # without min_seq b answers from what it has applied (it does not poll in this
        # test; on PostgreSQL the write's NOTIFY may already have woken it)
        assert top(b, x[30])[0]["id"] != "i30"
    # with it, b catches up first: read-your-writes through another server
    assert top(b, x[30], min_seq=later)[0]["id"] == "i30"
    # metadata changed through a: b's cached hit row is refreshed too
    r = a.patch(f"{BASE}/items/i5", json={"metadata": {"v": 2}})
    assert r.status_code == 200, r.text
    patched = int(r.headers["x-latentspace-seq"])
    if engine.dialect.name == "sqlite":
        assert top(b, x[5])[0]["metadata"] == {"v": 1}  # b has not read the oplog yet
    assert top(b, x[5], min_seq=patched)[0]["metadata"] == {"v": 2}
    # writes go both ways: b deletes, a reads it with b's seq
    r = b.delete(f"{BASE}/items/i30")
    assert r.status_code == 204, r.text
    deleted = int(r.headers["x-latentspace-seq"])
    assert top(a, x[30], min_seq=deleted)[0]["id"] != "i30"
    counts = [c.get(BASE).json()["count"] for c in (a, b)]
    assert counts == [39, 39]


def test_a_min_seq_no_write_of_the_collection_has_is_refused(
    still: tuple[TestClient, TestClient],
) -> None:
    a, b = still
    assert a.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
    seq = write(a, unit_rows(3, seed=2), ["x", "y", "z"])
    body = {"query": {"vector": [1.0] * DIM}, "k": 1, "consistency": {"min_seq": seq + 1000}}
    r = b.post(f"{BASE}/search", json=body)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert f"its newest is {seq}" in r.json()["detail"]
    body["consistency"] = {"min_seq": -1}
    assert b.post(f"{BASE}/search", json=body).status_code == 422


def test_hosts_on_one_database_follow_each_other_by_polling(
    polling: tuple[TestClient, TestClient],
) -> None:
    a, b = polling
    assert a.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
    x = unit_rows(30, seed=3)
    write(a, x[:10], [f"i{n}" for n in range(10)])
    assert top(b, x[3])[0]["id"] == "i3"
    write(a, x[10:], [f"i{n}" for n in range(10, 30)])
    # no min_seq: the follower's poll brings the new items within a few polls
    eventually(lambda: top(b, x[25])[0]["id"] == "i25")
    assert b.get(BASE).json()["count"] == 30
    # a collection deleted through a is forgotten by b
    assert a.delete(BASE).status_code == 204
    eventually(
        lambda: b.post(f"{BASE}/search", json={"query": {"vector": [1.0] * DIM}}).status_code == 404
    )


@pytest.fixture
def listening(tmp_path: Path, engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    """Two hosts on one PostgreSQL whose followers never poll on the clock."""
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    yield from pair(tmp_path, engine, shared_dir=False, poll_ms=3_600_000)


def test_on_postgresql_a_write_wakes_the_other_host_at_once(
    listening: tuple[TestClient, TestClient],
) -> None:
    # no clock polls (an hour apart): only the write's NOTIFY can bring it to b
    a, b = listening
    assert a.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
    x = unit_rows(10, seed=4)
    write(a, x[:5], [f"i{n}" for n in range(5)])
    assert top(b, x[2])[0]["id"] == "i2"
    write(a, x[5:], [f"i{n}" for n in range(5, 10)])
    eventually(lambda: top(b, x[8])[0]["id"] == "i8", seconds=15)


def test_min_seq_answers_503_when_a_write_holds_the_index_past_the_deadline(
    tmp_path: Path,
) -> None:
    from latentspace.errors import Unavailable
    from latentspace.service import collections, items, lifecycle, replica
    from latentspace.store.repository import ItemInput

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cluster = ClusterSettings(replica=True, poll_ms=3_600_000, consistency_timeout=0.2)
    a = lifecycle.start(make_settings(tmp_path / "a", database_url=url, cluster=cluster))
    b = lifecycle.start(make_settings(tmp_path / "b", database_url=url, cluster=cluster))
    try:
        collections.create(a, "c", dim=DIM)
        x = unit_rows(2, seed=5)
        items.write(a, "c", [ItemInput("x", "vector", "h0", x[0])])
        row = collections.get(b, "c")
        replica.reach(b, row, replica.written_seq(a, "c"))  # b opens the collection
        items.write(a, "c", [ItemInput("y", "vector", "h1", x[1])])
        seq = replica.written_seq(a, "c")
        with b.live.indexes.writing(row):  # a write of b's own holds its index
            started = time.monotonic()
            with pytest.raises(Unavailable, match="did not reach oplog"):
                replica.reach(b, row, seq)
            assert time.monotonic() - started >= 0.2
        replica.reach(b, row, seq)  # released: it catches up
        assert b.live.indexes.applied_seq(row) == seq
    finally:
        lifecycle.stop(b)
        lifecycle.stop(a)
