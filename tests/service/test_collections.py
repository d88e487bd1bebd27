"""A collection's index files go with it, and a save records the recall it measured."""

from __future__ import annotations

import pytest
from tests.fixtures import DIM, count, items, vectors

from latentspace.errors import NotFound
from latentspace.service import Context, collections
from latentspace.service import items as item_service
from latentspace.store import oplog


def test_delete_collection_removes_index_files(space: Context) -> None:
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(vectors(5)))
    collections.save(space, "c")
    directory = space.live.indexes.directory(collections.get(space, "c"))
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
