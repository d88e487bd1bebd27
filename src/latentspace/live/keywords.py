"""The keyword (BM25) indexes of every collection, kept current by tailing the SQL oplog
(see :mod:`latentspace.live.tailed`): a text written by any process, or changed without a
new vector, is found by the next search."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import InvalidInput
from latentspace.keyword import Analysis, KeywordHits, KeywordIndex
from latentspace.keyword.bm25 import Predicate
from latentspace.live.damage import DamageLog
from latentspace.live.tailed import Tailed
from latentspace.store import reads as texts_repo
from latentspace.store.engine import Unreadable
from latentspace.store.tables import CollectionRow

__all__ = ["KeywordIndexes", "analysis_of"]


def analysis_of(collection: CollectionRow, damage: DamageLog | None = None) -> Analysis:
    """The analysis a collection was created with (the defaults when it names none, or
    when what its row stores is not valid: damage, recorded in ``damage``)."""
    try:
        if isinstance(collection.keyword, Unreadable):
            raise InvalidInput("not JSON")
        return Analysis.from_json(collection.keyword)
    except (InvalidInput, ValueError, TypeError) as e:  # a row changed behind our back
        if damage is not None:
            stored = getattr(collection.keyword, "raw", collection.keyword)
            damage.record(
                collection,
                "keyword settings",
                f"the stored keyword settings {stored!r} are not valid ({e}); "
                "the defaults serve in their place until the collections row's `keyword` "
                "column holds valid settings (or null) again",
            )
        return Analysis()


class KeywordIndexes(Tailed[KeywordIndex]):
    """Per-collection BM25 indexes over items' text (a view of ``LiveState``).

    Args:
        sessions: the SQL session factory texts and the oplog are read from.
        damage: where stored keyword settings that are not valid are recorded.
    """

    def __init__(self, sessions: sessionmaker[Session], damage: DamageLog) -> None:
        super().__init__(sessions)
        self._damage = damage

    def _build(self, session: Session, collection: CollectionRow) -> KeywordIndex:
        index = KeywordIndex(analysis_of(collection, self._damage))
        index.upsert(texts_repo.live_texts(session=session, collection=collection))
        return index

    def _update(self, session: Session, index: KeywordIndex, touched: list[int]) -> None:
        found = texts_repo.texts_of(session=session, item_ids=touched)
        index.remove(i for i in touched if i not in found)
        index.upsert(found)

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
        with self._current(collection) as index:
            return index.search(query, k, allow=allow, predicate=predicate)
