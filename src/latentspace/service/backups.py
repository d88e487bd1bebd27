"""Backups off the machine: snapshots to and from S3-compatible storage, and a schedule.

:func:`upload` writes a snapshot into the scratch folder as a downloaded one is written
(``snapshots.take_temporary``: consistent, verified parts, the images' originals by
default), uploads it, and removes the scratch file. :func:`restore` reads the object's
start first (is it a snapshot, is it under ``max_snapshot_bytes``), downloads all of it
into the scratch folder, and restores it as ``snapshots.restore`` does: the whole file is
verified before anything changes.

With ``LATENTSPACE_BACKUP__SCHEDULE`` the server runs a :class:`BackupScheduler` thread:
when a run is due it queues one job of kind ``backup`` per collection (shown with the
collection's jobs), which uploads to ``<target><collection>/<UTC timestamp>.lsnap`` and then
deletes that collection's oldest scheduled backups so that ``keep`` remain. Only objects
named like those are counted and deleted; anything else under the prefix is left alone.
The time of each run is kept on its job, so a restart neither repeats nor skips one.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from latentspace.backup_settings import BackupSettings, S3Url, Schedule, parse_s3_url
from latentspace.limits import check
from latentspace.runner import ClaimedJob, JobOutcome
from latentspace.service import collections, jobs, snapshots
from latentspace.service.collections import CollectionStats
from latentspace.service.context import Context
from latentspace.service.jobs import JobInfo
from latentspace.service.periodic import Periodic
from latentspace.store import jobs as jobs_repo
from latentspace.store import s3
from latentspace.store.snapshot_file import read_manifest
from latentspace.store.tables import utcnow

__all__ = [
    "KIND",
    "BackupScheduler",
    "Uploaded",
    "manifest_of",
    "prune",
    "restore",
    "run",
    "upload",
]

logger = logging.getLogger(__name__)

KIND = "backup"
_STAMP = "%Y%m%dT%H%M%SZ"
_SCHEDULED = re.compile(r"\d{8}T\d{6}Z\.lsnap")
# A snapshot's start that holds its manifest: at most 1 MiB (``store.snapshot_file``
# refuses more) behind its tar headers.
_MANIFEST_SPAN = 2 << 20


@dataclass(frozen=True)
class Uploaded:
    """A snapshot uploaded: where, its bytes, its manifest, how long the upload took."""

    target: str
    bytes: int
    manifest: dict[str, Any]
    seconds: float


def upload(ctx: Context, name: str, target: str, *, originals: bool | None = None) -> Uploaded:
    """Snapshot collection ``name`` to object ``target`` (``s3://bucket/key``, replaced if
    it exists) in the store the backup settings name.

    Raises:
        InvalidInput: ``target`` is not an ``s3://bucket/key`` URL.
        NotFound: no such collection, or no such bucket.
        Unavailable: the store refused the credentials, cannot be reached, or failed.
    """
    url = parse_s3_url(target)
    return _upload(ctx, s3.ObjectStore(ctx.settings.backup), name, url, originals)


def _upload(
    ctx: Context, store: s3.ObjectStore, name: str, url: S3Url, originals: bool | None
) -> Uploaded:
    path = snapshots.take_temporary(ctx, name, originals=originals)
    try:
        manifest = read_manifest(path)
        size = path.stat().st_size
        started = time.perf_counter()
        store.upload(url, path)
        seconds = time.perf_counter() - started
    finally:
        path.unlink(missing_ok=True)
    logger.info(
        "collection %s: snapshot of %d bytes uploaded to %s in %.1f s", name, size, url, seconds
    )
    return Uploaded(str(url), size, manifest, seconds)


def manifest_of(settings: BackupSettings, source: str) -> tuple[dict[str, Any], int]:
    """The manifest of the snapshot at ``source`` (only the object's start is read) and
    the object's size.

    Raises:
        InvalidInput: not an ``s3://bucket/key`` URL, or the object is not a snapshot.
        NotFound: no such bucket or object.
        Unavailable: as :func:`upload`.
    """
    return _peek(s3.ObjectStore(settings), parse_s3_url(source))


def _peek(store: s3.ObjectStore, url: S3Url) -> tuple[dict[str, Any], int]:
    start, size = store.read_start(url, _MANIFEST_SPAN)
    return read_manifest(io.BytesIO(start)), size


def restore(
    ctx: Context, source: str, *, name: str | None = None, replace: bool = False
) -> CollectionStats:
    """Restore the snapshot at ``source`` (``s3://bucket/key``) as collection ``name``
    (default: its own); see ``snapshots.restore``.

    Raises:
        InvalidInput: as :func:`manifest_of`, or the file is not a sound snapshot (nothing
            is changed).
        LimitExceeded: the object is over ``max_snapshot_bytes``.
        NotFound: no such bucket or object.
        Conflict: the collection exists and ``replace`` is false.
        Unavailable: as :func:`upload`.
    """
    url = parse_s3_url(source)
    store = s3.ObjectStore(ctx.settings.backup)
    _, size = _peek(store, url)  # not a snapshot: refused before the download
    check(ctx.settings.limits, "max_snapshot_bytes", size, "bytes", f"snapshot {url}")
    fd, tmp = tempfile.mkstemp(prefix="download.", suffix=".lsnap", dir=snapshots.scratch_dir(ctx))
    os.close(fd)
    path = Path(tmp)
    try:
        store.download(url, path)
        return snapshots.restore(ctx, path, name=name, replace=replace)
    finally:
        path.unlink(missing_ok=True)


def prune(store: s3.ObjectStore, folder: S3Url, keep: int) -> list[str]:
    """Delete the oldest scheduled backups in ``folder`` so that ``keep`` remain; the keys
    deleted, oldest first (only ``<UTC timestamp>.lsnap`` objects count)."""
    scheduled = [
        o.key for o in store.listing(folder) if _SCHEDULED.fullmatch(o.key.removeprefix(folder.key))
    ]
    old = scheduled[: max(0, len(scheduled) - keep)]  # the timestamps sort as they happened
    if old:
        store.delete(folder, old)
    return old


def run(ctx: Context, job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
    """The ``backup`` job's handler: upload the collection, then prune its folder."""
    with ctx.sessions() as session:
        collection = jobs_repo.collection_by_id(session=session, collection_id=job.collection_id)
    if should_stop():
        return "stopped"
    params = job.params
    folder = parse_s3_url(str(params["folder"]), folder=True)
    store = s3.ObjectStore(ctx.settings.backup)  # one client for the upload and the pruning
    uploaded = _upload(ctx, store, collection.name, parse_s3_url(str(params["target"])), None)
    deleted = prune(store, folder, int(params["keep"]))
    items = int(uploaded.manifest["counts"]["items"])
    result = {
        "target": uploaded.target,
        "bytes": uploaded.bytes,
        "items": items,
        "seconds": round(uploaded.seconds, 3),
        "deleted": [str(S3Url(folder.bucket, key)) for key in deleted],
    }
    with ctx.sessions.begin() as session:
        jobs_repo.finish_with(session=session, job_id=job.id, done=items, result=result)
    return "done"


class BackupScheduler(Periodic):
    """The thread that queues a backup job of every collection when ``schedule`` says one
    is due (checked every ``poll`` seconds against ``clock``; tests call :meth:`run_due`
    with the time they choose instead)."""

    def __init__(
        self,
        ctx: Context,
        schedule: Schedule,
        target: S3Url,
        keep: int,
        *,
        clock: Callable[[], datetime] = utcnow,
        poll: float = 30.0,
    ) -> None:
        self._ctx = ctx
        self._schedule = schedule
        self._target = target
        self._keep = keep
        self._clock = clock
        super().__init__(
            poll,
            name="latentspace-backup",
            failure="checking which backups are due failed",
            at_once=True,
        )

    @classmethod
    def from_settings(cls, ctx: Context) -> BackupScheduler | None:
        """The scheduler the settings ask for; None without a schedule."""
        planned = ctx.settings.backup.planned()
        if planned is None:
            return None
        schedule, target = planned
        return cls(ctx, schedule, target, ctx.settings.backup.keep)

    def run_due(self, now: datetime) -> list[JobInfo]:
        """Queue a backup of each collection whose last scheduled one (by the time it was
        due, kept on its job) is older than the schedule allows at ``now``, unless one is
        still queued or running; the jobs queued."""
        queued = []
        for collection in collections.list_all(self._ctx):
            with self._ctx.sessions() as session:
                last = jobs_repo.latest_job(session=session, collection=collection, kind=KIND)
                state, params = (last.state, dict(last.params)) if last is not None else ("", {})
            if state in jobs_repo.UNFINISHED:
                continue
            stamp = params.get("scheduled_at")
            previous = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
            if not self._schedule.due(previous, now):
                continue
            folder = self._target.child(f"{collection.name}/")
            params = {
                "target": str(folder.child(now.astimezone(UTC).strftime(_STAMP) + ".lsnap")),
                "folder": str(folder),
                "keep": self._keep,
                "scheduled_at": now.isoformat(),
            }
            queued.append(jobs.submit(self._ctx, collection, KIND, params, total=0))
        if queued:
            logger.info("backup due: %s", ", ".join(j.collection for j in queued))
        return queued

    def tick(self) -> None:
        """Queue the backups due now (queued and running ones are the job runner's)."""
        self.run_due(self._clock())
