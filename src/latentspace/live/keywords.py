"""The keyword indexes of every collection, kept current by tailing the SQL oplog.

A collection's BM25 index is built from SQL the first time a query needs it, then brought
up to date before each keyword search by the oplog rows committed since: the items those
rows touched are re-read, so a text written by any process (or changed without a new
vector) is found by the next search. Nothing is stored on disk: SQL is the source, and a
restart rebuilds from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.index.locks import KeyedLocks
from latentspace.keyword import Analysis, KeywordHits, KeywordIndex
from latentspace.keyword.bm25 import Predicate
from latentspace.live.commit import Commit
from latentspace.store import oplog
from latentspace.store import reads as texts_repo
from latentspace.store.tables import CollectionRow

__all__ = ["KeywordIndexes", "analysis_of"]


def analysis_of(collection: CollectionRow) -> Analysis:
    """The analysis a collection was created with (the defaults when it names none)."""
    return Analysis.from_json(collection.keyword)


@dataclass
class _Live:
    index: KeywordIndex
    applied_seq: int


class KeywordIndexes:
    """Per-collection BM25 indexes over items' text.

    Args:
        sessions: the SQL session factory texts and the oplog are read from.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._live: dict[int, _Live] = {}
        self._locks = KeyedLocks()
        self._lock = threading.Lock()

    def current(self, collection: CollectionRow) -> KeywordIndex:
        """The collection's index with every committed write applied."""
        with self._locks.of(collection.id), self._sessions() as session:
            live = self._live.get(collection.id)
            if live is None:
                # The sequence is read before the texts: a write committed in between is
                # both in the texts and replayed next time, and replaying is idempotent.
                seq = oplog.last_seq(session=session, collection=collection)
                index = KeywordIndex(analysis_of(collection))
                index.upsert(texts_repo.live_texts(session=session, collection=collection))
                live = self._live[collection.id] = _Live(index, seq)
                return live.index
            tail = oplog.after(session=session, collection=collection, seq=live.applied_seq)
            if tail:
                touched = sorted({item_id for _, _, item_id in tail})
                found = texts_repo.texts_of(session=session, item_ids=touched)
                live.index.remove(i for i in touched if i not in found)
                live.index.upsert(found)
                live.applied_seq = tail[-1][0]
            return live.index

    def search(
        self,
        collection: CollectionRow,
        query: str,
        k: int,
        *,
        allow: np.ndarray | None = None,
        predicate: Predicate | None = None,
    ) -> KeywordHits:
        """The ``k`` best items of the collection for ``query`` (see ``KeywordIndex``)."""
        return self.current(collection).search(query, k, allow=allow, predicate=predicate)

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Nothing to do now: the next keyword search replays the oplog (see the module)."""
        del collection, commit

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop a collection's index (it has no files)."""
        del files
        with self._lock:
            self._live.pop(collection.id, None)
        self._locks.forget(collection.id)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Nothing to do: a migration changes no text."""
        del collection, files
