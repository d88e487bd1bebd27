"""Starting and stopping a service instance: migrate, open every index, load encoders,
resume background jobs, start the backup schedule; stop them, save."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from latentspace import migrations
from latentspace.datadir import DataDirLock
from latentspace.errors import LatentspaceError, StoreError, Unavailable
from latentspace.live import EncoderFactory, OpenReport
from latentspace.service import (
    autotag,
    backups,
    collections,
    expiry,
    integrity,
    maps,
    migrate,
)
from latentspace.service.context import Context, build_context
from latentspace.service.replica import Follower
from latentspace.settings import Settings
from latentspace.store.engine import reserve_collection_ids
from latentspace.store.expiry import Clock
from latentspace.types import TimingHook

__all__ = ["Warmer", "open_indexes", "start", "stop", "warm_encoders"]

logger = logging.getLogger(__name__)


def start(
    settings: Settings,
    *,
    engine: Engine | None = None,
    encoder_factory: EncoderFactory | None = None,
    on_timing: TimingHook | None = None,
    warm: bool = False,
    url: str | None = None,
    follow: bool = False,
    clock: Clock | None = None,
) -> Context:
    """A context whose database is at the newest schema and whose indexes agree with SQL.

    Args:
        warm: also load every collection's encoder now, and fill the hit cache and the
            payload indexes in a background thread (a server's first queries then do not
            pay for them, and readiness does not wait for them).
        url: where this instance serves HTTP, written beside the data-directory lock so a
            CLI command on the same directory talks to it.
        follow: apply what other processes write to the same database, every
            ``cluster.poll_ms``, and (when this process writes the data directory) sweep
            expired items away (a server does; a one-off CLI command need not).
        clock: the UTC time items expire by (tests control it); default the system's.

    With ``cluster.replica`` the data directory may be shared: when another process holds
    it, this one runs beside it as a replica (it neither saves index files nor resumes
    jobs until it takes the lock over).

    Raises:
        Conflict: another process holds the data directory.
        StoreError: the schema is not at the newest revision and may not be upgraded.
        VectorIndexError: the settings ask for a GPU that is not there.
    """
    lock = DataDirLock(
        settings.data_dir, url=url or settings.cluster.url, shared=settings.cluster.replica
    )
    try:
        ctx = build_context(
            settings,
            engine=engine,
            encoder_factory=encoder_factory,
            on_timing=on_timing,
            clock=clock,
        )
    except BaseException:
        lock.release()
        raise
    ctx.lock = lock
    ctx.live.writes_files = lock.primary
    if not lock.primary:
        logger.info("data directory %s is held by another process: replica", settings.data_dir)
    try:
        _prepare(ctx, warm=warm)
        if follow:
            follower = Follower(ctx)
            follower.start()
            ctx.follower = follower
            if ctx.live.writes_files:  # one process deletes: the one that holds the files
                sweeper = expiry.Sweeper(ctx)
                sweeper.start()
                ctx.sweeper = sweeper
    except BaseException:
        stop(ctx, save=False)
        raise
    return ctx


def _prepare(ctx: Context, *, warm: bool) -> None:
    settings = ctx.settings
    if settings.auto_migrate:
        migrations.upgrade(settings.resolved_database_url(), engine=ctx.engine)
    elif migrations.current_revision(ctx.engine) != migrations.head_revision():
        raise StoreError(
            "the database schema is not up to date; run `latentspace db upgrade` "
            "or set LATENTSPACE_AUTO_MIGRATE=true"
        )
    _reserve_folder_ids(ctx)
    for name, report in open_indexes(ctx).items():
        logger.info("collection %s: %s", name, report)
    orphans = _orphan_index_folders(ctx)
    if orphans:
        warning = (
            f"{len(orphans)} index folder(s) under {settings.data_dir / 'indexes'} belong to no "
            f"collection in the database ({', '.join(orphans[:5])}): is "
            "LATENTSPACE_DATABASE_URL the database this data directory was built with?"
        )
        logger.error("%s", warning)
        ctx.warnings.append(warning)
        if not collections.list_all(ctx):  # an empty or new file: serving it would lie
            ctx.refusal = (
                f"{warning} The database holds no collection at all: not ready until it is "
                "the right one (or those folders are moved away)."
            )
    if warm:
        warm_encoders(ctx)
        # the caches after readiness: searches meanwhile read from SQL what they lack
        ctx.warmer = Warmer(ctx)
        ctx.warmer.start()
    ctx.jobs.start(
        {
            autotag.KIND: lambda job, stop: autotag.run(ctx, job, stop),
            maps.KIND: lambda job, stop: maps.run(ctx, job, stop),
            migrate.KIND: lambda job, stop: migrate.run(ctx, job, stop),
            backups.KIND: lambda job, stop: backups.run(ctx, job, stop),
        },
        resume=ctx.live.writes_files,
    )
    scheduler = backups.BackupScheduler.from_settings(ctx)
    if scheduler is not None and ctx.live.writes_files:  # one process backs up: the holder
        ctx.backups = scheduler
        scheduler.start()


def _reserve_folder_ids(ctx: Context) -> None:
    # Index and map folders are named by collection id: an id a folder names is never
    # handed to a new collection (a collection deleted before ids were kept unique may
    # have left its map behind).
    named = [
        int(p.name)
        for folder in ("indexes", "maps")
        if (ctx.settings.data_dir / folder).is_dir()
        for p in (ctx.settings.data_dir / folder).iterdir()
        if p.name.isdigit()
    ]
    if named:
        with ctx.sessions.begin() as session:
            reserve_collection_ids(session=session, upto=max(named))


def _orphan_index_folders(ctx: Context) -> list[str]:
    # Index folders are named by collection id; a folder no collection has means the
    # database is not the one the data directory was built with (an empty or new file).
    root = ctx.settings.data_dir / "indexes"
    if not root.is_dir():
        return []
    known = {str(c.id) for c in collections.list_all(ctx)}
    return sorted(p.name for p in root.iterdir() if p.name.isdigit() and p.name not in known)


def open_indexes(ctx: Context) -> dict[str, OpenReport]:
    """Open every collection's index (verify, replay or rebuild); what each needed.

    A collection that cannot serve is logged and left out: it answers 503 with its reason,
    ``/readyz`` names it, and the others serve.
    """
    reports = {}
    for collection in collections.list_all(ctx):
        try:
            reports[collection.name] = ctx.live.indexes.open(collection)
        except Unavailable as e:
            logger.error("%s", e)
    return reports


class Warmer:
    """A thread that fills the hit cache and builds every collection's payload index once
    the instance is up, so a restart is ready without reading every row first."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start warming (once)."""
        self._thread = threading.Thread(target=self._run, name="latentspace-warm", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until warming is done (or ``timeout`` seconds); whether it is."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop after the collection in progress, and wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        ctx, started = self._ctx, time.perf_counter()
        try:
            rows = collections.list_all(ctx)
            for row in rows:
                if self._stop.is_set():
                    return
                integrity.check(ctx, row)  # before anything reads it whole
                ctx.live.hits.warm(row)
                ctx.live.payloads.matching(row, {})  # built now, not by the first filter
            logger.info(
                "warmed %d collection(s) in %.1f s: hit cache %.1f MiB (budget %d MiB)",
                len(rows),
                time.perf_counter() - started,
                ctx.live.hits.used_bytes / 2**20,
                ctx.settings.search.hit_cache_mb,
            )
        except Exception:  # a cache that stays cold costs speed, never answers
            logger.exception("warming the caches failed; searches read what they lack from SQL")
        finally:
            self._done.set()


def warm_encoders(ctx: Context) -> dict[str, str]:
    """Load every collection's encoder now; the specs that failed to load and why.

    Failures are logged, not raised: the other collections can still serve, and that
    collection's requests say why not.
    """
    failed = {}
    for spec, fingerprint in {(c.model, c.fingerprint) for c in collections.list_all(ctx)}:
        if spec is None:
            continue
        try:
            ctx.live.encoders.checked(spec, fingerprint)
        except LatentspaceError as e:
            logger.error("model %s of a collection cannot be loaded: %s", spec, e)
            failed[spec] = str(e)
    ctx.model_failures.update(failed)
    return failed


def stop(ctx: Context, *, save: bool = True) -> None:
    """Stop the background jobs (a job in progress resumes on the next start), save every
    open index (unless ``save`` is false), release the database and the data directory."""
    try:
        if ctx.follower is not None:
            ctx.follower.stop()
            ctx.follower = None
        if ctx.sweeper is not None:
            ctx.sweeper.stop()
            ctx.sweeper = None
        if ctx.warmer is not None:
            ctx.warmer.stop()
            ctx.warmer = None
        if ctx.backups is not None:
            ctx.backups.stop()
            ctx.backups = None
        ctx.jobs.stop()
        if save:
            ctx.live.indexes.close(collections.list_all(ctx))
        ctx.engine.dispose()
    finally:
        if ctx.lock is not None:
            ctx.lock.release()
            ctx.lock = None
