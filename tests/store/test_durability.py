"""SIGKILL the writer at random points of an ingest; every acknowledged item must survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latentspace.service import LatentSpace
from latentspace.settings import Settings

WRITER = r"""
import sys
import numpy as np
from latentspace.service import LatentSpace
from latentspace.settings import Settings
from latentspace.store.repository import ItemInput
from latentspace.errors import Conflict

data_dir, start, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
space = LatentSpace.open(Settings(data_dir=data_dir))
try:
    space.create_collection("ingest", dim=16, index="hnsw")
except Conflict:
    pass
rng = np.random.default_rng(round_)
n = start
while True:
    x = rng.normal(size=(25, 16)).astype("float32")
    batch = [ItemInput(f"i{n + j}", "vector", f"s{n + j}", x[j], metadata={"n": n + j})
             for j in range(25)]
    space.upsert("ingest", batch)
    print("ack", n, n + 25, flush=True)
    if n % 100 == 0:
        space.delete("ingest", [f"i{n}"])
        print("del", n, flush=True)
    if n % 500 == 0:
        space.save("ingest")
    n += 25
"""


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
        time.sleep(float(rng.uniform(2.0, 5.0)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout.read().splitlines():
            parts = line.split()
            if parts[0] == "ack":
                acked.update(f"i{j}" for j in range(int(parts[1]), int(parts[2])))
                start = max(start, int(parts[2]))
            elif parts[0] == "del":
                deleted.add(f"i{parts[1]}")
        child.stdout.close()

        space = LatentSpace.open(Settings(data_dir=tmp_path))
        try:
            if not acked:
                continue
            collection = space.collection("ingest")
            index = space.indexes.get(collection)
            with space.sessions() as session:
                from latentspace.store import repository as repo

                live = repo.count_live(session=session, collection=collection)
                for external_id in sorted(acked - deleted)[::37]:
                    repo.get_item(session=session, collection=collection, external_id=external_id)
            assert len(index) == live
            ids = set(index.current.ids().tolist())
            with space.sessions() as session:
                rows = repo.items_by_ids(session=session, item_ids=sorted(ids))
            assert len(rows) == len(ids)  # every indexed id is a live row
            query = np.random.default_rng(round_).normal(size=16).astype("float32")
            hits = space.search_vector("ingest", query, k=20)
            assert not {h.id for h in hits} & deleted
        finally:
            space.engine.dispose()
    assert len(acked) >= 2000, f"only {len(acked)} items acknowledged over 10 rounds"
