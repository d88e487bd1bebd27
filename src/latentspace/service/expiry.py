"""Expiry: items that stop being served at their ``expires_at``, and the sweep that
deletes them.

Reads skip an expired item at once (``store.expiry.visible`` in SQL, ``live.expiries``
for index searches). The sweep, every ``server.expiry_sweep`` seconds in the process that
writes the data directory, deletes them in batches through the oplog like any delete, so
the indexes, keyword, payload and pHash views and every replica follow. Each batch is
chosen and deleted in one transaction under the collection's write lock: an item upserted
anew with a later expiry meanwhile is not deleted.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from latentspace.live import Commit
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.periodic import Periodic
from latentspace.store import expiry, oplog
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["BATCH", "Sweeper", "sweep"]

logger = logging.getLogger(__name__)

BATCH = 1000  # items deleted per transaction


def sweep(ctx: Context, *, batch: int = BATCH) -> dict[str, int]:
    """Delete every item past its expiry, collection by collection; how many, by name."""
    swept: dict[str, int] = {}
    for collection in collections.list_all(ctx):
        total = 0
        while (done := _sweep_batch(ctx, collection, batch)) > 0:
            total += done
        if total:
            swept[collection.name] = total
    return swept


def _sweep_batch(ctx: Context, collection: CollectionRow, batch: int) -> int:
    with ctx.live.writing(collection):
        with ctx.sessions.begin() as session:
            oplog.serialize(session=session, collection=collection)
            due = expiry.expired_ids(session=session, collection=collection, limit=batch)
            item_ids = repo.delete_items(session=session, collection=collection, external_ids=due)
            seq = oplog.last_seq(session=session, collection=collection)
        if item_ids:
            ctx.live.committed(collection, Commit(seq, deletes=item_ids))
    return len(item_ids)


class Sweeper(Periodic):
    """A thread that runs :func:`sweep` every ``server.expiry_sweep`` seconds; ``swept``
    counts the items it deleted, by collection (``/metrics``)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(
            ctx.settings.server.expiry_sweep,
            name="latentspace-sweep",
            failure="sweeping expired items failed; trying again next round",
            at_once=False,
        )
        self._ctx = ctx
        self._lock = threading.Lock()
        self._swept: Counter[str] = Counter()

    @property
    def swept(self) -> dict[str, int]:
        """Items deleted since start, by collection."""
        with self._lock:
            return dict(self._swept)

    def tick(self) -> None:
        """One sweep."""
        self.run_once()

    def run_once(self) -> dict[str, int]:
        """One sweep now; what it deleted (counted in :attr:`swept`)."""
        done = sweep(self._ctx)
        with self._lock:
            self._swept.update(done)
        for name, n in done.items():
            logger.info("collection %s: %d expired item(s) deleted", name, n)
        return done
