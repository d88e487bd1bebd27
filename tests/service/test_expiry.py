"""Expiry: an item past its ``expires_at`` is skipped by every read at once, on a clock the
test controls, and the sweep deletes it through the oplog (on SQLite and PostgreSQL), so a
restart and a second process on the same database see the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from tests.fixtures import DIM, items, vectors

from latentspace.errors import NotFound
from latentspace.service import Context, bulk, collections, expiry, lifecycle
from latentspace.service import items as item_service
from latentspace.service.intake import NewItem
from latentspace.service.search import search_vector
from latentspace.settings import Settings
from latentspace.store.tables import OplogRow

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def start(engine: Engine, folder: Path, opened: list[Context], clock: Clock) -> Context:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(data_dir=folder, database_url=url)
    opened.append(lifecycle.start(settings, engine=engine, clock=clock))
    return opened[-1]


@pytest.fixture
def timed(engine: Engine, tmp_path: Path, opened: list[Context], clock: Clock) -> Context:
    """A started context whose clock the test moves, with collection "c" of 50 vectors;
    v0-v9 expire 60 s after T0, the others never."""
    ctx = start(engine, tmp_path / "data", opened, clock)
    collections.create(ctx, "c", dim=DIM)
    written = items(vectors(50))
    written[:10] = [replace(i, expires_at=T0 + timedelta(seconds=60)) for i in written[:10]]
    item_service.write(ctx, "c", written)
    return ctx


EXPIRING = {f"v{i}" for i in range(10)}


def seen(ctx: Context) -> dict[str, object]:
    """What each read shows of collection "c"."""
    x = vectors(50)
    page, _ = item_service.list_page(ctx, "c", limit=100)
    scrolled, _ = bulk.scroll(ctx, "c", filter={"n": {"$lt": 20}}, limit=100)
    return {
        "nearest v5": search_vector(ctx, "c", x[5], k=1)[0].id,
        "all by search": {h.id for h in search_vector(ctx, "c", x[5], k=50)},
        "filtered search": {
            h.id for h in search_vector(ctx, "c", x[5], k=50, filter={"n": {"$lt": 20}})
        },
        "listed": {r.external_id for r in page},
        "scrolled": {r.external_id for r in scrolled.rows},
        "got": {r.external_id for r in bulk.get(ctx, "c", ["v5", "v15"]).rows},
        "count": bulk.count(ctx, "c"),
        "filtered count": bulk.count(ctx, "c", filter={"n": {"$lt": 20}}),
        "stats count": collections.stats(ctx, "c").count,
    }


def test_an_expired_item_is_skipped_by_every_read_at_once(timed: Context, clock: Clock) -> None:
    before = seen(timed)
    assert before["nearest v5"] == "v5"
    assert before["all by search"] >= EXPIRING  # type: ignore[operator]
    assert before["count"] == before["stats count"] == 50
    clock.advance(59.9)
    assert seen(timed) == before
    clock.advance(0.1)  # expires_at itself: gone
    after = seen(timed)
    first20 = {f"v{i}" for i in range(10, 20)}
    assert after == {
        "nearest v5": after["nearest v5"],
        "all by search": {f"v{i}" for i in range(10, 50)},  # k=50 finds the 40 that remain
        "filtered search": first20,
        "listed": {f"v{i}" for i in range(10, 50)},
        "scrolled": first20,
        "got": {"v15"},
        "count": 40,
        "filtered count": 10,
        "stats count": 40,
    }
    assert after["nearest v5"] not in EXPIRING
    with pytest.raises(NotFound):
        item_service.get(timed, "c", "v5")


def test_the_sweep_deletes_expired_items_through_the_oplog(
    timed: Context, clock: Clock, engine: Engine
) -> None:
    assert expiry.sweep(timed) == {}  # nothing due yet
    clock.advance(61)
    shown = seen(timed)
    with timed.sessions() as session:
        deletes_before = session.scalar(
            select(func.count()).select_from(OplogRow).where(OplogRow.op == "delete")
        )
    assert expiry.sweep(timed, batch=3) == {"c": 10}  # in batches of 3
    with timed.sessions() as session:
        deletes_after = session.scalar(
            select(func.count()).select_from(OplogRow).where(OplogRow.op == "delete")
        )
    assert deletes_after - deletes_before == 10
    assert seen(timed) == shown
    assert timed.live.indexes.stats(collections.get(timed, "c")).count == 40
    assert expiry.sweep(timed) == {}


def test_a_restart_and_a_second_process_agree(
    timed: Context, clock: Clock, engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    clock.advance(61)
    shown = seen(timed)
    other = start(engine, tmp_path / "other", opened, clock)  # its own data directory
    assert seen(other) == shown  # expired there too, before any sweep
    expiry.sweep(timed)
    assert seen(other) == shown
    assert seen(timed) == shown
    if timed.lock is not None:
        timed.lock.release()
    again = start(engine, tmp_path / "data", opened, clock)
    assert seen(again) == shown


def test_a_collection_ttl_and_an_upsert_set_the_expiry(
    engine: Engine, tmp_path: Path, opened: list[Context], clock: Clock
) -> None:
    ctx = start(engine, tmp_path / "data", opened, clock)
    collections.create(ctx, "t", dim=DIM, ttl_seconds=30)
    assert collections.stats(ctx, "t").ttl_seconds == 30
    x = vectors(3)
    own = replace(items(x)[2], expires_at=T0 + timedelta(seconds=100))
    item_service.write(ctx, "t", [*items(x)[:2], own])
    row, _ = item_service.get(ctx, "t", "v0")
    assert row.expires_at is not None
    assert row.expires_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=30)
    clock.advance(20)
    item_service.write(ctx, "t", items(x)[1:2])  # rewritten: 30 s from now
    clock.advance(15)  # T0 + 35
    assert {r.external_id for r in item_service.list_page(ctx, "t", limit=10)[0]} == {"v1", "v2"}
    clock.advance(20)  # T0 + 55
    assert {h.id for h in search_vector(ctx, "t", x[0], k=3)} == {"v2"}
    assert expiry.sweep(ctx) == {"t": 2}


def test_an_expiry_in_the_past_is_refused_for_that_item(
    engine: Engine, tmp_path: Path, opened: list[Context], clock: Clock
) -> None:
    ctx = start(engine, tmp_path / "data", opened, clock)
    collections.create(ctx, "p", dim=DIM)
    x = vectors(2).tolist()
    results = item_service.ingest(
        ctx,
        "p",
        [
            NewItem(id="old", vector=x[0], expires_at=T0),
            NewItem(id="new", vector=x[1], expires_at=T0 + timedelta(seconds=1)),
        ],
    )
    assert [r.status for r in results] == ["error", "created"]
    assert "not in the future" in str(results[0].error)
    assert bulk.count(ctx, "p") == 1
    assert np.isfinite(search_vector(ctx, "p", np.asarray(x[1]), k=1)[0].score)
