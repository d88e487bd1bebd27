"""A collection that is gone leaves nothing behind in any view of any process, and one
recreated under its name inherits nothing: not its vectors, hits, keywords, payload index,
hashes, map or row, and not its id (SQLite would hand the newest deleted id out again without
AUTOINCREMENT, and everything kept by id would then be served to the newcomer).

Each view is asked about the gone collection's id directly (a stub row with that id), so
the tests would catch a view that kept anything even if an id were reused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from latentspace.errors import NotFound
from latentspace.service import Context, collections, jobs, lifecycle, maps, replica, snapshots
from latentspace.service import items as item_service
from latentspace.service.search import search_vector
from latentspace.settings import ClusterSettings, Settings
from latentspace.store.repository import ItemInput
from latentspace.store.tables import CollectionRow

DIM = 16
N = 40


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def populate(space: Context, name: str, seed: int) -> np.ndarray:
    """``N`` items with vectors, texts (word ``w<seed>``) and perceptual hashes."""
    x = unit(N, seed)
    collections.create(space, name, dim=DIM)
    item_service.write(
        space,
        name,
        [
            ItemInput(
                f"s{seed}-{i}",
                "image",
                hashlib.sha256(f"{seed}-{i}".encode()).hexdigest(),
                v,
                text=f"w{seed} number {i}",
                metadata={"seed": seed},
                phash=seed * 1_000_003 + i * 7919,
            )
            for i, v in enumerate(x)
        ],
    )
    return x


def touch_every_view(space: Context, name: str, x: np.ndarray, seed: int) -> CollectionRow:
    """Fill each view of the collection: row, index, hits, keywords, hashes and map."""
    row = collections.get(space, name)
    assert search_vector(space, name, x[0], k=1)[0].metadata == {"seed": seed}
    assert space.live.keywords.search(row, f"w{seed}", 5).ids.size == 5
    assert space.live.phashes.search(row, [seed * 1_000_003], 0)[0]
    assert space.live.payloads.matching(row, {"seed": seed}).size == N
    job = maps.start(space, name, method="pca")
    deadline = time.monotonic() + 60
    while jobs.get(space, job.id).state not in ("done", "failed"):
        assert time.monotonic() < deadline, "the map job did not finish"
        time.sleep(0.05)
    assert jobs.get(space, job.id).state == "done"
    assert len(maps.view(space, name).ids) == N
    return row


def assert_nothing_kept(space: Context, old: CollectionRow, old_seed: int) -> None:
    """Each view, asked about the old id, answers from SQL alone (where nothing is left)."""
    stub = CollectionRow(id=old.id, name=old.name, dim=DIM, fingerprint=old.fingerprint)
    assert space.live.rows.peek(old.name) is None or space.live.rows.peek(old.name).id != old.id
    assert old.id not in space.live.indexes.open_ids()
    data_dir = space.settings.data_dir
    assert not (data_dir / "indexes" / str(old.id)).exists()
    assert not (data_dir / "maps" / str(old.id)).exists()
    assert space.live.maps.fitted(stub) is None
    assert space.live.maps.latest(stub) is None
    # rows it lacks are read from SQL by item id: none of the old collection's are left
    shown = space.live.hits.rows(stub, list(range(1, 4 * N)))
    assert all(row.metadata["seed"] != old_seed for row in shown.values())
    assert space.live.keywords.search(stub, f"w{old_seed}", 5).ids.size == 0
    assert space.live.phashes.search(stub, [old_seed * 1_000_003], 0) == [[]]
    assert space.live.payloads.matching(stub, {"seed": old_seed}).size == 0


def assert_recreated_inherits_nothing(space: Context, name: str, old: CollectionRow) -> None:
    fresh_x = populate(space, name, seed=2)
    fresh = collections.get(space, name)
    assert fresh.id > old.id  # ids are never handed out twice
    hits = search_vector(space, name, unit(N, 1)[0], k=N + 5)
    assert {h.metadata["seed"] for h in hits} == {2}
    assert len(hits) == N
    assert space.live.keywords.search(fresh, "w1", 5).ids.size == 0
    assert space.live.phashes.search(fresh, [1 * 1_000_003], 0) == [[]]
    assert space.live.payloads.matching(fresh, {"seed": 1}).size == 0
    with pytest.raises(NotFound, match="no map yet"):
        maps.view(space, name)
    touch_every_view(space, name, fresh_x, seed=2)


def settings_for(engine: Engine, data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, database_url=engine.url.render_as_string(False), **overrides)


def deleted(space: Context, name: str) -> None:
    collections.delete(space, name)


def restored_over(space: Context, name: str) -> None:
    # A snapshot of another collection restored over this one's name (replace).
    populate(space, "other", seed=3)
    path = space.settings.data_dir / "other.snapshot"
    snapshots.take(space, "other", path)
    snapshots.restore(space, path, name=name, replace=True)
    collections.delete(space, name)  # the recreate below starts from an empty name


@pytest.mark.parametrize("gone", [deleted, restored_over], ids=["deleted", "restored-over"])
def test_a_gone_collection_leaves_nothing_and_a_recreated_one_inherits_nothing(
    engine: Engine,
    tmp_path: Path,
    opened: list[Context],
    gone: Callable[[Context, str], None],
) -> None:
    space = lifecycle.start(settings_for(engine, tmp_path / "data"))
    opened.append(space)
    x = populate(space, "photos", seed=1)
    old = touch_every_view(space, "photos", x, seed=1)
    gone(space, "photos")
    assert_nothing_kept(space, old, old_seed=1)
    assert_recreated_inherits_nothing(space, "photos", old)


def test_a_collection_deleted_by_another_process_is_forgotten_here(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    cluster = ClusterSettings(replica=True, poll_ms=3_600_000)
    here = lifecycle.start(settings_for(engine, tmp_path / "a", cluster=cluster))
    opened.append(here)
    there = lifecycle.start(settings_for(engine, tmp_path / "b", cluster=cluster))
    opened.append(there)
    x = populate(here, "photos", seed=1)
    old = touch_every_view(here, "photos", x, seed=1)
    collections.delete(there, "photos")
    populate(there, "photos", seed=2)  # recreated over there before this process looks
    assert replica.Follower(here).poll() >= 0
    assert_nothing_kept(here, old, old_seed=1)
    hits = search_vector(here, "photos", x[0], k=N + 5)
    assert {h.metadata["seed"] for h in hits} == {2}
    assert collections.get(here, "photos").id > old.id


def test_ids_named_by_folders_are_never_handed_out(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    # A data directory from before ids were kept unique may hold the map of a deleted
    # collection whose id the table no longer knows: start-up reserves it.
    data_dir = tmp_path / "data"
    (data_dir / "maps" / "7").mkdir(parents=True)
    space = lifecycle.start(settings_for(engine, data_dir))
    opened.append(space)
    collections.create(space, "c", dim=DIM)
    assert collections.get(space, "c").id > 7


def test_reserving_ids_twice_keeps_one_counter(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    from latentspace.store.engine import reserve_collection_ids

    space = lifecycle.start(settings_for(engine, tmp_path / "data"))
    opened.append(space)
    for upto in (5, 9, 3):  # the counter only moves forward
        with space.sessions.begin() as session:
            reserve_collection_ids(session=session, upto=upto)
    collections.create(space, "a", dim=DIM)
    collections.delete(space, "a")
    collections.create(space, "b", dim=DIM)
    assert collections.get(space, "b").id == 11
