"""The migration's SQL side: items read in chunks under SQLite's parameter bound, a
migration's own vectors replaced per item, and a write from the old space refused."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import Conflict
from latentspace.migrations import upgrade
from latentspace.store import jobs as jobs_repo
from latentspace.store import migrate as migrate_repo
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.engine import make_session_factory
from latentspace.store.repository import ItemInput


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    upgrade(engine.url.render_as_string(hide_password=False), engine=engine)
    return make_session_factory(engine)


def _collection_of(sessions: sessionmaker[Session], n: int) -> list[int]:
    rng = np.random.default_rng(0)
    items = [
        ItemInput(f"i{k}", "vector", f"sha{k}", rng.normal(size=4).astype(np.float32))
        for k in range(n)
    ]
    with sessions.begin() as s:
        c = repo.create_collection(session=s, name="c", model=None, dim=4, fingerprint="a" * 64)
        return [o.item_id for o in repo.upsert_items(session=s, collection=c, items=items)]


def test_items_by_id_come_in_order_and_in_chunks(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _collection_of(sessions, 50)
    monkeypatch.setattr(migrate_repo, "ID_CHUNK", 7)  # several IN lists per call
    wanted = ids[3::2]
    with sessions() as s:
        c = repo.get_collection(session=s, name="c")
        every = migrate_repo.item_sources(session=s, collection=c, ids=list(reversed(wanted)))
        assert [i.id for i in every] == wanted
        page = migrate_repo.item_sources(
            session=s, collection=c, ids=wanted, after=ids[20], limit=9
        )
        assert [i.id for i in page] == [i for i in wanted if i > ids[20]][:9]
        plain = migrate_repo.item_sources(session=s, collection=c, after=ids[45])
        assert [i.id for i in plain] == ids[46:]
        assert {i.sha256 for i in plain} == {"sha46", "sha47", "sha48", "sha49"}


def test_pending_vectors_are_replaced_per_item(sessions: sessionmaker[Session]) -> None:
    ids = _collection_of(sessions, 5)
    with sessions.begin() as s:
        c = repo.get_collection(session=s, name="c")
        job = jobs_repo.create_job(session=s, collection=c, kind="migrate", params={}, total=5)
        job_id = job.id
        one, two = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
        migrate_repo.put_pending(session=s, job_id=job_id, vectors=[(ids[0], "x", one)])
        migrate_repo.put_pending(
            session=s, job_id=job_id, vectors=[(ids[0], "y", two), (ids[1], "z", one)]
        )
    with sessions() as s:
        pending = migrate_repo.pending_vectors(session=s, job_id=job_id, dim=3)
        assert migrate_repo.pending_hashes(session=s, job_id=job_id) == {ids[0]: "y", ids[1]: "z"}
    assert np.array_equal(pending[ids[0]][1], two)
    with sessions.begin() as s:
        migrate_repo.drop_pending(session=s, job_ids=[job_id])
    with sessions() as s:
        assert migrate_repo.pending_hashes(session=s, job_id=job_id) == {}


def test_a_write_with_the_row_of_the_old_model_is_refused(sessions: sessionmaker[Session]) -> None:
    _collection_of(sessions, 2)
    with sessions() as s:
        stale = repo.get_collection(session=s, name="c")
        s.expunge(stale)
    with sessions.begin() as s:
        c = repo.get_collection(session=s, name="c")
        oplog.serialize(session=s, collection=c)
        migrate_repo.swap_model(
            session=s,
            collection=c,
            job_id=0,
            model="m2",
            dim=4,
            fingerprint="b" * 64,
            vectors={},
            directions={},
            result={},
        )
    with sessions.begin() as s, pytest.raises(Conflict, match="moved to another model"):
        oplog.serialize(session=s, collection=stale)
    with sessions() as s:
        fresh = repo.get_collection(session=s, name="c")
        assert (fresh.model, fresh.fingerprint) == ("m2", "b" * 64)
        assert oplog.after(session=s, collection=fresh, seq=0)[-1][1:] == ("model", 0)
