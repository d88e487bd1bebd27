"""The service core: writes reach SQL then the index; restarts load, replay or rebuild."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from latentspace.errors import DimensionMismatch, InvalidInput, NotFound
from latentspace.service import Context, collections, lifecycle
from latentspace.service import items as item_service
from latentspace.service import search as search_module
from latentspace.service.search import search_vector
from latentspace.settings import Settings
from latentspace.store import oplog
from latentspace.store.repository import ItemInput

DIM = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(x: np.ndarray, start: int = 0) -> list[ItemInput]:
    return [
        ItemInput(f"v{start + i}", "vector", f"sha{start + i}", v, metadata={"n": start + i})
        for i, v in enumerate(x)
    ]


@pytest.fixture
def space(engine: Engine, tmp_path: Path, opened: list[Context]) -> Context:
    settings = Settings(data_dir=tmp_path / "data", database_url=engine.url.render_as_string(False))
    opened.append(lifecycle.start(settings, engine=engine))
    return opened[-1]


def reopen(space: Context, opened: list[Context]) -> Context:
    if space.lock is not None:  # as if the process that held the data directory had died
        space.lock.release()
    opened.append(lifecycle.start(space.settings, engine=space.engine))
    return opened[-1]


def count(space: Context, name: str) -> int:
    return collections.stats(space, name).count


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


def test_filtered_search_both_paths(space: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    x = vectors(300, seed=1)
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(x))
    wanted = {"n": {"$lt": 50}}
    by_allow_list = search_vector(space, "c", x[200], k=5, filter=wanted)
    monkeypatch.setattr(search_module, "ALLOW_LIST_LIMIT", 10)
    by_post_filter = search_vector(space, "c", x[200], k=5, filter=wanted)
    assert [h.id for h in by_allow_list] == [h.id for h in by_post_filter]
    assert all(h.metadata["n"] < 50 for h in by_allow_list)
    assert len(by_allow_list) == 5


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


def test_restart_loads_the_saved_index(space: Context, opened: list[Context]) -> None:
    collections.create(space, "c", dim=DIM, index="flat")
    item_service.write(space, "c", items(vectors(50)))
    lifecycle.stop(space)
    again = reopen(space, opened)
    report = lifecycle.open_indexes(again)["c"]
    assert report.action == "loaded"
    assert collections.stats(again, "c").count == 50


def test_restart_without_save_replays_the_oplog(space: Context, opened: list[Context]) -> None:
    collections.create(space, "c", dim=DIM, index="hnsw")
    item_service.write(space, "c", items(vectors(50)))
    collections.save(space, "c")
    item_service.write(space, "c", items(vectors(20, seed=3), start=50))
    item_service.delete(space, "c", ["v0", "v1"])
    # no close(): as if the process died here
    again = reopen(space, opened)
    report = lifecycle.open_indexes(again)["c"]
    assert report.action == "replayed"
    assert report.replayed == 22
    assert collections.stats(again, "c").count == 68
    assert search_vector(again, "c", vectors(20, seed=3)[7], k=1)[0].id == "v57"


@pytest.mark.parametrize("damage", ["truncate", "fingerprint"])
def test_damaged_or_foreign_index_is_rebuilt(
    space: Context, damage: str, opened: list[Context]
) -> None:
    collections.create(space, "c", dim=DIM, index="flat")
    item_service.write(space, "c", items(vectors(40)))
    lifecycle.stop(space)
    directory = space.indexes.directory(collections.get(space, "c"))
    if damage == "truncate":
        (path,) = directory.glob("index.*.faiss")
        path.write_bytes(path.read_bytes()[:100])
    else:
        manifest = directory / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"fingerprint": "', '"fingerprint": "0'))
    again = reopen(space, opened)
    report = lifecycle.open_indexes(again)["c"]
    assert report.action == "rebuilt"
    assert collections.stats(again, "c").count == 40
    assert search_vector(again, "c", vectors(40)[3], k=1)[0].id == "v3"


def test_delete_collection_removes_index_files(space: Context) -> None:
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(vectors(5)))
    collections.save(space, "c")
    directory = space.indexes.directory(collections.get(space, "c"))
    assert directory.is_dir()
    collections.delete(space, "c")
    assert not directory.exists()
    with pytest.raises(NotFound):
        count(space, "c")


def test_save_records_measured_recall(space: Context) -> None:
    from latentspace.store import repository as repo

    collections.create(space, "h", dim=DIM, index="hnsw")
    collections.create(space, "f", dim=DIM, index="flat")
    for name in ("h", "f"):
        item_service.write(space, name, items(vectors(300, seed=5)))
        collections.save(space, name)
    with space.sessions() as session:
        for name in ("h", "f"):
            row = oplog.get_manifest(
                session=session, collection=repo.get_collection(session=session, name=name)
            )
            assert row is not None
            assert row.count == 300
            assert row.recall_at_10 is not None
            assert row.recall_at_10 >= 0.95


def test_schema_check_without_auto_migrate(tmp_path: Path) -> None:
    from latentspace.errors import StoreError

    settings = Settings(data_dir=tmp_path, auto_migrate=False)
    with pytest.raises(StoreError, match="latentspace db upgrade"):
        lifecycle.start(settings)
    lifecycle.stop(lifecycle.start(settings.model_copy(update={"auto_migrate": True})))
    lifecycle.stop(lifecycle.start(settings))  # now at head: opens without migrating
