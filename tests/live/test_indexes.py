"""Live indexes across restarts and crashes: a restart loads the saved index, replays the
oplog past it, or rebuilds a damaged or foreign one; a writer SIGKILLed at random points of
an ingest loses no acknowledged item, and its index matches SQL.

The kill point is a random count of acknowledged batches: the writer is then already
writing the next one (or deleting, or saving), so each round kills it mid-write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.fixtures import DIM, items, reopen, vectors

from latentspace.live.indexes import setup
from latentspace.service import Context, collections, lifecycle
from latentspace.service import items as item_service
from latentspace.service.search import search_vector
from latentspace.settings import Settings
from latentspace.store import repository as repo

WRITER = r"""
import sys
import numpy as np
from latentspace.service import collections, items, lifecycle
from latentspace.settings import Settings
from latentspace.store.repository import ItemInput
from latentspace.errors import Conflict

data_dir, start, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
space = lifecycle.start(Settings(data_dir=data_dir))
try:
    collections.create(space, "ingest", dim=16, index="hnsw")
except Conflict:
    pass
rng = np.random.default_rng(round_)
n = start
while True:
    x = rng.normal(size=(25, 16)).astype("float32")
    batch = [ItemInput(f"i{n + j}", "vector", f"s{n + j}", x[j], metadata={"n": n + j})
             for j in range(25)]
    items.write(space, "ingest", batch)
    print("ack", n, n + 25, flush=True)
    if n % 100 == 0:
        items.delete(space, "ingest", [f"i{n}"])
        print("del", n, flush=True)
    if n % 500 == 0:
        collections.save(space, "ingest")
    n += 25
"""


def test_restart_loads_the_saved_index(space: Context, opened: list[Context]) -> None:
    collections.create(space, "c", dim=DIM, index="flat")
    item_service.write(space, "c", items(vectors(50)))
    lifecycle.stop(space)
    again = reopen(space, opened)
    report = lifecycle.open_indexes(again)["c"]
    assert report.action == "loaded"
    assert collections.stats(again, "c").count == 50


def test_a_save_with_nothing_new_writes_nothing(space: Context, opened: list[Context]) -> None:
    # A shutdown after reads alone (or a second flush) leaves the files as they are: at a
    # million items a save rewrites gigabytes and measures recall first.
    collections.create(space, "c", dim=DIM, index="hnsw")
    item_service.write(space, "c", items(vectors(50)))
    collections.save(space, "c")
    folder = space.live.indexes.directory(collections.get(space, "c"))
    manifest = (folder / "manifest.json").read_text()
    collections.save(space, "c")  # nothing written since
    assert (folder / "manifest.json").read_text() == manifest
    lifecycle.stop(space)  # nor at shutdown
    assert (folder / "manifest.json").read_text() == manifest
    again = reopen(space, opened)
    assert lifecycle.open_indexes(again)["c"].action == "loaded"
    assert search_vector(again, "c", vectors(50)[3], k=1)[0].id == "v3"
    collections.save(again, "c")  # loaded and unchanged: still nothing to write
    assert (folder / "manifest.json").read_text() == manifest
    item_service.delete(again, "c", ["v0"])
    collections.save(again, "c")  # a change: a new generation
    assert (folder / "manifest.json").read_text() != manifest


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
    directory = space.live.indexes.directory(collections.get(space, "c"))
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


@pytest.mark.slow
def test_sigkill_during_ingest_loses_no_acknowledged_item(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    acked: set[str] = set()
    deleted: set[str] = set()
    start = 0
    for round_ in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(start), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert child.stdout is not None

        def record(line: str) -> bool:
            nonlocal start
            parts = line.split()
            if parts and parts[0] == "ack":
                acked.update(f"i{j}" for j in range(int(parts[1]), int(parts[2])))
                start = max(start, int(parts[2]))
                return True
            if parts and parts[0] == "del":
                deleted.add(f"i{parts[1]}")
            return False

        batches = int(rng.integers(5, 30))  # the kill point: after this many acknowledgements
        while batches:
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            batches -= record(line)
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout.read().splitlines():  # written before the kill landed
            record(line)
        child.stdout.close()

        space = lifecycle.start(Settings(data_dir=tmp_path))
        try:
            collection = collections.get(space, "ingest")
            index = space.live.indexes.index(collection)
            with space.sessions() as session:
                live = repo.count_live(session=session, collection=collection)
                for external_id in sorted(acked - deleted)[::37]:
                    repo.get_item(session=session, collection=collection, external_id=external_id)
            assert len(index) == live
            ids = set(index.current.ids().tolist())
            with space.sessions() as session:
                rows = repo.items_by_ids(session=session, item_ids=sorted(ids))
            assert len(rows) == len(ids)  # every indexed id is a live row
            query = np.random.default_rng(round_).normal(size=16).astype("float32")
            hits = search_vector(space, "ingest", query, k=20)
            assert not {h.id for h in hits} & deleted
        finally:
            lifecycle.stop(space, save=False)  # the next writer must find the index as is
    assert len(acked) >= 10 * 5 * 25


def test_a_rebuild_reads_the_items_there_were_when_it_began(space: Context) -> None:
    # Writes that land while a rebuild reads are replayed by the rebuild itself; reading
    # them too, page after page, it never ended while writes kept coming (and each was
    # added twice: a tombstone per write, then a compaction, then another rebuild).
    collections.create(space, "c", dim=DIM, index="flat")
    x = vectors(250)
    item_service.write(space, "c", items(x[:200]))
    row = collections.get(space, "c")
    batches = setup.vector_batches(space.sessions, row)()
    read = []
    first = next(batches)
    read.append(first[0])
    item_service.write(space, "c", items(x[200:], start=200))  # while the rebuild reads
    for ids, _ in batches:
        read.append(ids)
    with space.sessions() as session:
        before = repo.iter_live_vectors(session=session, collection=row, batch=10_000)
        everything = np.concatenate([ids for ids, _ in before])
    seen = np.concatenate(read)
    assert seen.shape[0] == 200  # the 50 written meanwhile are not chased
    assert everything.shape[0] == 250
    np.testing.assert_array_equal(seen, everything[:200])
