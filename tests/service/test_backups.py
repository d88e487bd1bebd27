"""The backup schedule with an injected clock: each due run is one ``backup`` job per
collection, each collection keeps exactly ``keep`` scheduled backups, and a backup's
object holds the collection as it was when it ran."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.fixtures import DIM, vectors
from tests.s3_server import S3Server

from latentspace.backup_settings import Schedule, parse_s3_url
from latentspace.service import Context, collections, jobs, lifecycle
from latentspace.service import items as item_service
from latentspace.service.backups import BackupScheduler, manifest_of, restore
from latentspace.service.jobs import JobInfo
from latentspace.settings import Settings
from latentspace.store.repository import ItemInput

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def items(n: int, *, seed: int, start: int = 0) -> list[ItemInput]:
    """``n`` raw-vector items v<start>..., each hashed as a snapshot wants (sha256)."""
    return [
        ItemInput(f"v{start + i}", "vector", hashlib.sha256(v.tobytes()).hexdigest(), v)
        for i, v in enumerate(vectors(n, seed=seed))
    ]


@pytest.fixture
def ctx(tmp_path: Path, engine: Engine, s3_server: S3Server) -> Iterator[Context]:
    """A started instance on each database kind whose backups reach ``s3_server``, holding
    collections "a" (5 vectors), "b" (3) and "c" (none); no schedule of its own."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=engine.url.render_as_string(False),
        backup=s3_server.settings(),
    )
    started = lifecycle.start(settings, engine=engine)
    try:
        assert started.backups is None  # no schedule set: no thread
        for name, n in (("a", 5), ("b", 3), ("c", 0)):
            collections.create(started, name, dim=DIM)
            if n:
                item_service.write(started, name, items(n, seed=n))
        yield started
    finally:
        lifecycle.stop(started)


def _finished(ctx: Context, queued: list[JobInfo]) -> list[JobInfo]:
    deadline = time.monotonic() + 60
    while True:
        now = [jobs.get(ctx, j.id) for j in queued]
        if all(j.state not in ("queued", "running") for j in now):
            return now
        assert time.monotonic() < deadline, now
        time.sleep(0.05)


def _scheduler(ctx: Context, bucket: str, keep: int) -> BackupScheduler:
    target = parse_s3_url(f"s3://{bucket}/nightly/", folder=True)
    return BackupScheduler(ctx, Schedule.parse("6h"), target, keep)


def test_each_run_backs_up_every_collection_and_keeps_exactly_keep(
    ctx: Context, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    # not scheduled backups: never counted, never deleted
    others = ["nightly/a/manual.lsnap", "nightly/a/old/20000101T000000Z.lsnap"]
    for key in others:
        s3_server.put(bucket, key, b"kept")
    scheduler = _scheduler(ctx, bucket, keep=2)
    runs = [T0 + i * SIX_HOURS for i in range(4)]
    for n, at in enumerate(runs):
        if n == 3:  # the last run sees a sixth item of "a"
            item_service.write(ctx, "a", items(1, seed=99, start=5))
        queued = scheduler.run_due(at)
        assert sorted(j.collection for j in queued) == ["a", "b", "c"]
        done = _finished(ctx, queued)
        assert [j.state for j in done] == ["done"] * 3, done
        assert scheduler.run_due(at + timedelta(hours=5, minutes=59)) == []  # not yet due
    stamps = ["20300101T120000Z.lsnap", "20300101T180000Z.lsnap"]
    for name in ("a", "b", "c"):
        kept = [f"nightly/{name}/{s}" for s in stamps]
        assert s3_server.keys(bucket, f"nightly/{name}/") == sorted(
            kept + [k for k in others if k.startswith(f"nightly/{name}/")]
        )
    # the objects hold the collection as it was at each run
    newest, before = (f"s3://{bucket}/nightly/a/{s}" for s in reversed(stamps))
    assert manifest_of(ctx.settings.backup, newest)[0]["counts"]["items"] == 6
    assert manifest_of(ctx.settings.backup, before)[0]["counts"]["items"] == 5
    assert manifest_of(ctx.settings.backup, f"s3://{bucket}/nightly/c/{stamps[1]}")[0][
        "counts"
    ] == {"items": 0, "directions": 0, "adapters": 0}
    assert restore(ctx, newest, name="a-restored").count == 6
    _, got = item_service.get(ctx, "a-restored", "v5", with_vector=True)
    _, expected = item_service.get(ctx, "a", "v5", with_vector=True)
    assert got is not None
    assert expected is not None
    assert got.tolist() == expected.tolist()
    # each run is a job of the collection, newest first, saying what it wrote and deleted
    recorded = jobs.list_all(ctx, "a")
    assert [(j.kind, j.state) for j in recorded] == [("backup", "done")] * 4
    assert [j.params["scheduled_at"] for j in recorded] == [t.isoformat() for t in reversed(runs)]
    results = [j.params["result"] for j in reversed(recorded)]
    assert [r["target"] for r in results] == [
        f"s3://{bucket}/nightly/a/{t.strftime('%Y%m%dT%H%M%SZ')}.lsnap" for t in runs
    ]
    assert [r["items"] for r in results] == [5, 5, 5, 6]
    assert [r["deleted"] for r in results] == [
        [],
        [],
        [f"s3://{bucket}/nightly/a/20300101T000000Z.lsnap"],
        [f"s3://{bucket}/nightly/a/20300101T060000Z.lsnap"],
    ]
    assert (recorded[0].done, recorded[0].total) == (6, 6)


def test_a_backup_not_yet_run_is_not_queued_twice(
    ctx: Context, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.jobs, "submit", lambda job_id: None)  # the runner never sees them
    scheduler = _scheduler(ctx, s3_server.new_bucket(), keep=1)
    assert len(scheduler.run_due(T0)) == 3
    assert scheduler.run_due(T0 + 2 * SIX_HOURS) == []
    assert [j.state for j in jobs.list_all(ctx, "a")] == ["queued"]


def test_a_failed_backup_is_recorded_and_tried_again_when_next_due(ctx: Context) -> None:
    scheduler = _scheduler(ctx, "ls-no-such-bucket-for-backups", keep=1)
    done = _finished(ctx, scheduler.run_due(T0))
    assert [j.state for j in done] == ["failed"] * 3
    assert all("no bucket 'ls-no-such-bucket-for-backups'" in (j.error or "") for j in done)
    assert scheduler.run_due(T0 + timedelta(hours=1)) == []
    assert len(scheduler.run_due(T0 + SIX_HOURS)) == 3


def test_a_daily_schedule_runs_once_a_day(ctx: Context, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    target = parse_s3_url(f"s3://{bucket}/daily/", folder=True)
    scheduler = BackupScheduler(ctx, Schedule.parse("daily@02:30"), target, 3)
    at = T0.replace(hour=9)
    assert len(_finished(ctx, scheduler.run_due(at))) == 3  # never backed up: at once
    assert scheduler.run_due(at.replace(hour=23)) == []
    assert scheduler.run_due(at + timedelta(hours=17, minutes=29)) == []  # 02:29 next day
    assert len(_finished(ctx, scheduler.run_due(at + timedelta(hours=17, minutes=30)))) == 3
    assert s3_server.keys(bucket, "daily/b/") == [
        "daily/b/20300101T090000Z.lsnap",
        "daily/b/20300102T023000Z.lsnap",
    ]


def test_the_peek_at_an_object_reaches_past_the_largest_manifest() -> None:
    # restore and the CLI read only an object's start for its manifest: it must hold the
    # largest manifest a snapshot may have, with its tar headers
    from latentspace.service import backups
    from latentspace.store import snapshot_file

    assert backups._MANIFEST_SPAN >= snapshot_file._MANIFEST_BYTES + 3 * 512 + (1 << 16)
