"""When each collection's expiring items expire: the ids a read must skip *now*.

An item past its ``expires_at`` is invisible at once, though the sweep deletes it only on
its next round (``service.expiry``). SQL reads skip it by their condition
(:func:`latentspace.store.expiry.visible`); index searches skip the ids this view names,
a post-filter the index widens its search for, so a search still finds ``k`` others. The
view holds only items that carry an expiry, built from SQL on first use and kept current
by tailing the oplog (:mod:`latentspace.live.tailed`), so other processes' writes count.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from latentspace.live.tailed import Tailed
from latentspace.store import expiry
from latentspace.store.tables import CollectionRow

__all__ = ["Expiries", "ExpiryIndex"]


class ExpiryIndex:
    """Item ids and their expiries (POSIX seconds), sorted by expiry on demand."""

    def __init__(self, ids: np.ndarray, times: np.ndarray) -> None:
        self._expiry = dict(zip(ids.tolist(), times.tolist(), strict=True))
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._expiry)

    def remove(self, ids: list[int]) -> None:
        """Forget these items (deleted, or no longer expiring)."""
        for i in ids:
            self._expiry.pop(i, None)
        self._sorted = None

    def set(self, ids: np.ndarray, times: np.ndarray) -> None:
        """Record (or move) these items' expiries."""
        self._expiry.update(zip(ids.tolist(), times.tolist(), strict=True))
        self._sorted = None

    def expired(self, at: float) -> np.ndarray:
        """The sorted ids whose expiry is at or before ``at``."""
        if not self._expiry:
            return np.empty(0, dtype=np.int64)
        if self._sorted is None:
            times = np.fromiter(self._expiry.values(), dtype=np.float64, count=len(self._expiry))
            ids = np.fromiter(self._expiry.keys(), dtype=np.int64, count=len(self._expiry))
            order = np.argsort(times, kind="stable")
            self._sorted = (times[order], ids[order])
        times, ids = self._sorted
        return np.sort(ids[: int(np.searchsorted(times, at, side="right"))])


class Expiries(Tailed[ExpiryIndex]):
    """Per-collection expiry indexes (a view of :class:`~latentspace.live.LiveState`)."""

    def _build(self, session: Session, collection: CollectionRow) -> ExpiryIndex:
        return ExpiryIndex(*expiry.expiring(session=session, collection=collection))

    def _update(self, session: Session, index: ExpiryIndex, touched: list[int]) -> None:
        index.remove(touched)
        index.set(*expiry.expiries_of(session=session, item_ids=touched))

    def expired(self, collection: CollectionRow, at: float) -> np.ndarray:
        """The sorted ids of the collection's live items past their expiry at ``at`` (POSIX
        seconds), with every committed write applied."""
        with self._current(collection) as index:
            return index.expired(at)
