"""LatentSpace: writes reach SQL then the index; restarts load, replay or rebuild."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from latentspace.errors import DimensionMismatch, InvalidInput, NotFound
from latentspace.service import LatentSpace
from latentspace.service import space as service_module
from latentspace.settings import Settings
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
def space(engine: Engine, tmp_path: Path) -> LatentSpace:
    settings = Settings(data_dir=tmp_path / "data", database_url=engine.url.render_as_string(False))
    return LatentSpace.open(settings, engine=engine)


def reopen(space: LatentSpace) -> LatentSpace:
    return LatentSpace.open(space.settings, engine=space.engine)


def test_write_search_delete(space: LatentSpace) -> None:
    x = vectors(200)
    space.create_collection("c", dim=DIM, index="hnsw")
    outcomes = space.upsert("c", items(x))
    assert {o.status for o in outcomes} == {"created"}
    hits = space.search_vector("c", x[5], k=3)
    assert hits[0].id == "v5"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].metadata == {"n": 5}
    assert space.delete("c", ["v5", "v6"]) == 2
    assert "v5" not in {h.id for h in space.search_vector("c", x[5], k=10)}
    assert space.count("c") == 198


def test_filtered_search_both_paths(space: LatentSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    x = vectors(300, seed=1)
    space.create_collection("c", dim=DIM)
    space.upsert("c", items(x))
    wanted = {"n": {"$lt": 50}}
    by_allow_list = space.search_vector("c", x[200], k=5, filter=wanted)
    monkeypatch.setattr(service_module, "ALLOW_LIST_LIMIT", 10)
    by_post_filter = space.search_vector("c", x[200], k=5, filter=wanted)
    assert [h.id for h in by_allow_list] == [h.id for h in by_post_filter]
    assert all(h.metadata["n"] < 50 for h in by_allow_list)
    assert len(by_allow_list) == 5


def test_bad_input(space: LatentSpace) -> None:
    space.create_collection("c", dim=DIM)
    with pytest.raises(DimensionMismatch):
        space.upsert("c", items(np.ones((1, 3), np.float32)))
    with pytest.raises(InvalidInput, match="zero vector"):
        space.upsert("c", items(np.zeros((1, DIM), np.float32)))
    with pytest.raises(InvalidInput, match="NaN"):
        space.search_vector("c", np.full(DIM, np.nan))
    with pytest.raises(InvalidInput, match="invalid filter key"):
        space.search_vector("c", vectors(1)[0], filter={"x;drop": 1})
    with pytest.raises(NotFound):
        space.search_vector("nope", vectors(1)[0])
    with pytest.raises(InvalidInput, match="unknown index kind"):
        space.create_collection("d", dim=DIM, index="annoy")
    assert space.count("c") == 0


def test_restart_loads_the_saved_index(space: LatentSpace) -> None:
    space.create_collection("c", dim=DIM, index="flat")
    space.upsert("c", items(vectors(50)))
    space.close()
    again = reopen(space)
    report = again.verify()["c"]
    assert report.action == "loaded"
    assert len(again.indexes.get(again.collection("c"))) == 50


def test_restart_without_save_replays_the_oplog(space: LatentSpace) -> None:
    space.create_collection("c", dim=DIM, index="hnsw")
    space.upsert("c", items(vectors(50)))
    space.save("c")
    space.upsert("c", items(vectors(20, seed=3), start=50))
    space.delete("c", ["v0", "v1"])
    # no close(): as if the process died here
    again = reopen(space)
    report = again.verify()["c"]
    assert report.action == "replayed"
    assert report.replayed == 22
    assert len(again.indexes.get(again.collection("c"))) == 68
    assert again.search_vector("c", vectors(20, seed=3)[7], k=1)[0].id == "v57"


@pytest.mark.parametrize("damage", ["truncate", "fingerprint"])
def test_damaged_or_foreign_index_is_rebuilt(space: LatentSpace, damage: str) -> None:
    space.create_collection("c", dim=DIM, index="flat")
    space.upsert("c", items(vectors(40)))
    space.close()
    directory = space.indexes.directory(space.collection("c"))
    if damage == "truncate":
        (path,) = directory.glob("index.*.faiss")
        path.write_bytes(path.read_bytes()[:100])
    else:
        manifest = directory / "manifest.json"
        manifest.write_text(manifest.read_text().replace('"fingerprint": "', '"fingerprint": "0'))
    again = reopen(space)
    report = again.verify()["c"]
    assert report.action == "rebuilt"
    assert len(again.indexes.get(again.collection("c"))) == 40
    assert again.search_vector("c", vectors(40)[3], k=1)[0].id == "v3"


def test_delete_collection_removes_index_files(space: LatentSpace) -> None:
    space.create_collection("c", dim=DIM)
    space.upsert("c", items(vectors(5)))
    space.save("c")
    directory = space.indexes.directory(space.collection("c"))
    assert directory.is_dir()
    space.delete_collection("c")
    assert not directory.exists()
    with pytest.raises(NotFound):
        space.count("c")


def test_save_records_measured_recall(space: LatentSpace) -> None:
    from latentspace.store import repository as repo

    space.create_collection("h", dim=DIM, index="hnsw")
    space.create_collection("f", dim=DIM, index="flat")
    for name in ("h", "f"):
        space.upsert(name, items(vectors(300, seed=5)))
        space.save(name)
    with space.sessions() as session:
        for name in ("h", "f"):
            row = repo.get_manifest(
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
        LatentSpace.open(settings)
    LatentSpace.open(settings.model_copy(update={"auto_migrate": True})).close()
    LatentSpace.open(settings).close()  # now at head: opens without migrating
