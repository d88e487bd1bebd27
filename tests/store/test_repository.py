from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import Conflict, InvalidInput, NotFound
from latentspace.migrations import upgrade
from latentspace.store import lookups, oplog
from latentspace.store import repository as repo
from latentspace.store.engine import make_session_factory
from latentspace.store.repository import ItemInput
from latentspace.store.tables import OplogRow, as_utc, utcnow


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    upgrade(engine.url.render_as_string(hide_password=False), engine=engine)
    return make_session_factory(engine)


def item(external_id: str, seed: int, **kw: object) -> ItemInput:
    vector = np.random.default_rng(seed).normal(size=4).astype(np.float32)
    return ItemInput(external_id, "vector", f"sha{seed}", vector, **kw)  # type: ignore[arg-type]


def test_collections(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        repo.create_collection(session=s, name="pets", model=None, dim=4, fingerprint="f" * 64)
    with sessions.begin() as s, pytest.raises(Conflict, match="already exists"):
        repo.create_collection(session=s, name="pets", model=None, dim=4, fingerprint="f")
    for bad in ("", "../etc", "a b", "x" * 200, "-lead"):
        with sessions.begin() as s, pytest.raises(InvalidInput, match="invalid collection name"):
            repo.create_collection(session=s, name=bad, model=None, dim=4, fingerprint="f")
    with sessions.begin() as s, pytest.raises(InvalidInput, match="dim"):
        repo.create_collection(session=s, name="zero", model=None, dim=0, fingerprint="f")
    with sessions() as s:
        assert [c.name for c in repo.list_collections(session=s)] == ["pets"]
        with pytest.raises(NotFound, match="'cats'"):
            repo.get_collection(session=s, name="cats")


def test_upsert_statuses_and_oplog(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
        first = repo.upsert_items(session=s, collection=c, items=[item("a", 1), item("b", 2)])
    assert [o.status for o in first] == ["created", "created"]
    with sessions.begin() as s:
        again = repo.upsert_items(
            session=s,
            collection=c,
            items=[item("a", 1), item("b", 2, metadata={"x": 1}), item("c", 3)],
        )
    assert [(o.status, o.vector_changed) for o in again] == [
        ("unchanged", False),
        ("updated", False),  # metadata only: no new vector, a "meta" oplog row
        ("created", True),
    ]
    with sessions.begin() as s:
        changed = repo.upsert_items(session=s, collection=c, items=[item("a", 9)])
    assert changed[0].status == "updated"
    assert changed[0].vector_changed
    with sessions() as s:
        log = oplog.after(session=s, collection=c, seq=0)
        assert [op for _, op, _ in log] == ["upsert", "upsert", "meta", "upsert", "upsert"]
        vectors = repo.vectors_of(session=s, item_ids=[changed[0].item_id], dim=4)
        expected = np.random.default_rng(9).normal(size=4).astype(np.float32)
        np.testing.assert_array_equal(vectors[changed[0].item_id], expected)
        assert repo.get_item(session=s, collection=c, external_id="b").metadata_ == {"x": 1}


def test_delete_is_soft_logged_and_revivable(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
        repo.upsert_items(session=s, collection=c, items=[item("a", 1), item("b", 2)])
        seq = oplog.last_seq(session=s, collection=c)
        deleted = repo.delete_items(session=s, collection=c, external_ids=["a", "nope"])
    assert len(deleted) == 1
    with sessions() as s:
        assert repo.count_live(session=s, collection=c) == 1
        assert oplog.after(session=s, collection=c, seq=seq) == [(seq + 1, "delete", deleted[0])]
        with pytest.raises(NotFound):
            repo.get_item(session=s, collection=c, external_id="a")
        ids, vectors = next(repo.iter_live_vectors(session=s, collection=c))
        assert len(ids) == 1
        assert vectors.shape == (1, 4)
    with sessions.begin() as s:
        revived = repo.upsert_items(session=s, collection=c, items=[item("a", 1)])
    assert revived[0].status == "created"
    assert revived[0].item_id == deleted[0]


def test_bad_batches_write_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
    bad = ItemInput("z", "vector", "sha", np.ones(3, np.float32))
    with pytest.raises(InvalidInput, match="3 dimensions"), sessions.begin() as s:
        repo.upsert_items(session=s, collection=c, items=[item("a", 1), bad])
    with pytest.raises(InvalidInput, match="twice"), sessions.begin() as s:
        repo.upsert_items(session=s, collection=c, items=[item("a", 1), item("a", 2)])
    with sessions() as s:
        assert repo.count_live(session=s, collection=c) == 0
        assert s.scalar(select(OplogRow.seq)) is None


def test_metadata_patch_and_filters(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
        repo.upsert_items(
            session=s,
            collection=c,
            items=[item(f"i{n}", n, metadata={"n": n, "even": n % 2 == 0}) for n in range(10)],
        )
        repo.update_metadata(
            session=s, collection=c, external_id="i3", metadata={"n": None, "t": "x"}
        )
        repo.delete_items(session=s, collection=c, external_ids=["i4"])
    with sessions() as s:
        assert repo.get_item(session=s, collection=c, external_id="i3").metadata_ == {
            "even": False,
            "t": "x",
        }
        ids = lookups.filter_item_ids(
            session=s, collection=c, spec={"even": True, "n": {"$gte": 2}}
        )
        names = {
            r.external_id for r in repo.items_by_ids(session=s, item_ids=ids.tolist()).values()
        }
        assert names == {"i2", "i6", "i8"}  # i4 is deleted


def test_delete_collection_removes_everything(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
        repo.upsert_items(session=s, collection=c, items=[item("a", 1)])
        oplog.put_manifest(session=s, collection=c, kind="flat", params={}, count=1, oplog_seq=1)
    with sessions.begin() as s:
        repo.delete_collection(session=s, name="c")
    with sessions.begin() as s:
        c2 = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="f")
        assert repo.count_live(session=s, collection=c2) == 0
        assert oplog.get_manifest(session=s, collection=c2) is None


def test_bulk_rows_read_back_as_written(sessions: sessionmaker[Session]) -> None:
    # The bulk insert converts each column itself (the timestamp once for all rows): every
    # type must come back as the ORM would have written it, in the items' order.
    many = [
        item(
            f"i{n}",
            n,
            text=f"text {n}" if n % 2 else None,
            metadata={"n": n, "tags": ["a", "é"], "nested": {"ok": n % 3 == 0}},
            phash=-(2**63) + n,
            pixels=n * 10,
        )
        for n in range(300)
    ]
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="bulk", model=None, dim=4, fingerprint="f")
        outcomes = repo.upsert_items(session=s, collection=c, items=many)
    assert [o.external_id for o in outcomes] == [i.external_id for i in many]
    with sessions() as s:
        rows = repo.items_by_ids(session=s, item_ids=[o.item_id for o in outcomes])
        vectors = repo.vectors_of(session=s, item_ids=list(rows), dim=4)
        log = oplog.after(session=s, collection=c, seq=0)
    assert [item_id for _, _, item_id in log] == [o.item_id for o in outcomes]
    stamps = set()
    for o, given in zip(outcomes, many, strict=True):
        row = rows[o.item_id]
        assert (row.external_id, row.text, row.metadata_, row.phash, row.pixels) == (
            given.external_id,
            given.text,
            given.metadata,
            given.phash,
            given.pixels,
        )
        assert row.deleted is False
        np.testing.assert_array_equal(vectors[o.item_id], given.vector)
        stamps.add(as_utc(row.created_at))
    (stamp,) = stamps
    assert abs((stamp - utcnow()).total_seconds()) < 60
