"""Keeping up with other processes: every server is a replica that tails the SQL oplog.

Any process may write to SQL (a second worker on the same data directory, another host on
the same PostgreSQL). A process applies its own writes at once; what others committed it
learns from the oplog, which a :class:`Follower` reads every ``cluster.poll_ms`` (and, on
PostgreSQL, as soon as a write commits: it listens for the writes' ``NOTIFY``): the open
indexes replay the rows after the sequence they applied (and the other live views re-read
what they held of those items), collections deleted elsewhere are forgotten, collections
migrated elsewhere to another model are reopened in the new space, and a replica whose
data-directory holder is gone takes the lock over. The keyword legs and
maps read the oplog themselves on each use.

Read-your-writes: every write answers its oplog sequence; a search that passes it as
``consistency.min_seq`` is served only once this process has applied it (:func:`reach`).
"""

from __future__ import annotations

import logging
import threading
import time

from latentspace.errors import Conflict, Unavailable
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.notify import OplogListener
from latentspace.store.tables import CollectionRow

__all__ = ["SEQ_HEADER", "Follower", "applied_seq", "reach", "written_seq"]

# The response header that carries a write's oplog sequence.
SEQ_HEADER = "X-Latentspace-Seq"

logger = logging.getLogger(__name__)


def applied_seq(ctx: Context, collection: CollectionRow) -> int:
    """The newest oplog sequence of the collection this process has applied (its writes
    answer it: a search passing it as ``min_seq`` sees them)."""
    seq = ctx.live.indexes.applied_seq(collection)
    if seq is None:
        ctx.live.indexes.open(collection)
        seq = ctx.live.indexes.applied_seq(collection) or 0
    return seq


def written_seq(ctx: Context, name: str) -> int:
    """:func:`applied_seq` of the collection called ``name`` (what a write answers)."""
    return applied_seq(ctx, collections.get(ctx, name))


def reach(ctx: Context, collection: CollectionRow, min_seq: int) -> None:
    """Return once this process has applied the collection's oplog up to ``min_seq``.

    Raises:
        Conflict: no write to the collection has that sequence (it is newer than the
            collection's newest committed write).
        Unavailable: not applied within ``cluster.consistency_timeout`` (an index that is
            still opening, or a long write holding it).
    """
    seq = ctx.live.indexes.applied_seq(collection)
    if seq is not None and seq >= min_seq:
        return
    with ctx.sessions() as session:
        newest = oplog.last_seq(session=session, collection=collection)
    if newest < min_seq:
        raise Conflict(
            f"consistency.min_seq {min_seq} is newer than every write to collection "
            f"{collection.name!r} (its newest is {newest}); pass the seq a write to this "
            "collection answered"
        )
    timeout = ctx.settings.cluster.consistency_timeout
    if seq is None:
        ctx.live.indexes.open(collection)  # opening reads everything SQL has committed
        ctx.live.caught_up(collection)
    elif ctx.live.indexes.catch_up(collection, timeout=timeout) is None:
        raise Unavailable(
            f"collection {collection.name!r} did not reach oplog {min_seq} within "
            f"{timeout:g} s (LATENTSPACE_CLUSTER__CONSISTENCY_TIMEOUT); retry"
        )
    reached = ctx.live.indexes.applied_seq(collection) or 0
    if reached < min_seq:  # pragma: no cover - SQL said it was committed
        raise Unavailable(f"collection {collection.name!r} is at oplog {reached}, not {min_seq}")


class Follower:
    """A thread that applies what other processes commit, every ``cluster.poll_ms``."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: OplogListener | None = None

    def start(self) -> None:
        """Start polling (once)."""
        self._thread = threading.Thread(target=self._run, name="latentspace-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the poll in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        interval = self._ctx.settings.cluster.poll_ms / 1000
        self._listener = OplogListener.for_engine(self._ctx.engine)
        try:
            while not self._wait(interval):
                try:
                    self.poll()
                except Exception:  # a database hiccup must not end the thread; retry later
                    logger.exception("reading the oplog for other processes' writes failed")
                    time.sleep(interval)
        finally:
            if self._listener is not None:
                self._listener.close()

    def _wait(self, interval: float) -> bool:
        # Until the next poll is due or (PostgreSQL) a write commits; True once stopped.
        deadline = time.monotonic() + interval
        while self._listener is not None and not self._stop.is_set():
            left = deadline - time.monotonic()
            try:
                if left <= 0 or self._listener.wait(min(left, 0.5)):
                    return False
            except Exception:  # the connection dropped: poll on the clock from now on
                logger.exception("the oplog listener failed; polling every %g s", interval)
                self._listener.close()
                self._listener = None
        return self._stop.wait(max(0.0, deadline - time.monotonic()))

    def poll(self) -> int:
        """One round: forget collections deleted elsewhere, drop the old space of those
        migrated elsewhere, catch every open index up, take the data directory over if its
        holder is gone; how many oplog rows were applied."""
        ctx = self._ctx
        rows = {row.id: row for row in collections.list_all(ctx)}
        held = {row.id: row for row in ctx.live.rows.held()}
        for collection_id in ctx.live.indexes.open_ids():
            held.setdefault(
                collection_id, CollectionRow(id=collection_id, name=f"#{collection_id}")
            )
        for collection_id, row in held.items():
            current = rows.get(collection_id)
            if current is None:
                if self._gone(collection_id):  # and not one created since the listing
                    ctx.live.forget(row)
                    logger.info("collection %s was deleted by another process", row.name)
            elif row.fingerprint is not None and current.fingerprint != row.fingerprint:
                ctx.live.remodelled(row)  # migrated by another process
        applied = 0
        for collection_id in ctx.live.indexes.open_ids():
            opened = rows.get(collection_id)
            if opened is None:  # opened since the listing (created meanwhile): next round
                continue
            seq = ctx.live.indexes.applied_seq(opened)
            with ctx.sessions() as session:
                newest = oplog.last_seq(session=session, collection=opened)
            if seq is not None and newest > seq:
                applied += ctx.live.indexes.catch_up(opened) or 0
        self._promote()
        return applied

    def _gone(self, collection_id: int) -> bool:
        # Whether SQL has no such collection now (ids are never reused: gone is gone).
        with self._ctx.sessions() as session:
            return repo.fingerprint_of(session=session, collection_id=collection_id) is None

    def _promote(self) -> None:
        lock = self._ctx.lock
        if lock is not None and not lock.primary and lock.try_promote():
            self._ctx.live.writes_files = True
            logger.warning(
                "the process holding %s is gone: this one now writes the index files",
                lock.path.parent,
            )
