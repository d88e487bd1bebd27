"""The live-indexes seam: what every use-case may ask of a collection's index."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Unpack

import numpy as np

from latentspace.index import SearchResult
from latentspace.index.base import SearchOptions
from latentspace.live.commit import Commit
from latentspace.store.tables import CollectionRow

__all__ = ["IndexStats", "LiveIndexes", "OpenReport"]


@dataclass(frozen=True)
class OpenReport:
    """How a collection's index was brought up to date: created, loaded, replayed or rebuilt."""

    action: str
    replayed: int = 0
    reason: str = ""


@dataclass(frozen=True)
class IndexStats:
    """What a live index is right now."""

    kind: str
    params: dict[str, Any]
    count: int
    applied_seq: int
    rebuilding: bool
    on_gpu: bool
    exact_limit: int | None = None  # auto collections: exact below this many vectors
    quantization: str = "none"
    bytes: int = 0  # resident bytes of the index (codes, graph, id maps)


class LiveIndexes(Protocol):
    """The live indexes of every collection, as the use-cases see them.

    ``writes_files``: whether this process saves index files (a replica sharing the data
    directory with the process that does only reads them).
    """

    writes_files: bool

    def open(self, collection: CollectionRow) -> OpenReport:
        """Bring the collection's index up to date with SQL (once); how that went."""

    def writing(self, collection: CollectionRow) -> AbstractContextManager[None]:
        """Held around a write's SQL commit and its :meth:`committed`, so they keep seq
        order."""

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Apply a commit's vectors (the caller holds :meth:`writing`)."""

    def ready(self, collection: CollectionRow) -> bool:
        """Whether a search would run at once: the index is open and no write to it is
        under way. A hint, read without locks (a write may begin right after)."""

    def search(
        self,
        collection: CollectionRow,
        queries: np.ndarray,
        k: int,
        **options: Unpack[SearchOptions],
    ) -> SearchResult:
        """The ``k`` nearest live item ids of each query (see ``VectorIndex.search``)."""

    def save(self, collection: CollectionRow) -> None:
        """Persist the index and record its manifest (with measured recall) in SQL."""

    def check_room(self, collection: CollectionRow, adding: int) -> None:
        """Refuse a write of ``adding`` vectors the memory budget cannot hold (507)."""
        ...

    def retune(self, collection: CollectionRow) -> None:
        """The collection's index settings changed (``collection`` is the new row): build
        what they ask for while the current index keeps serving."""
        ...

    def rebuild(self, collection: CollectionRow) -> OpenReport:
        """Rebuild the index from the vectors in SQL, in the kind it should be, and save it."""

    def stats(self, collection: CollectionRow) -> IndexStats:
        """Kind, parameters, size and state of the live index."""

    def catch_up(self, collection: CollectionRow, *, timeout: float | None = None) -> int | None:
        """Apply the oplog rows other processes committed; how many were read, or None
        when a write held the collection past ``timeout`` seconds."""

    def applied_seq(self, collection: CollectionRow) -> int | None:
        """The newest oplog sequence the open index holds; None when it is not open."""

    def open_ids(self) -> list[int]:
        """Ids of the collections whose index is open in this process."""

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Forget a deleted collection's index and (when ``files``) remove its files."""

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop an index whose vectors are in the collection's old space (and its files
        when ``files``); the next use opens the new space."""

    def close(self, collections: list[CollectionRow]) -> None:
        """Save every open index (shutdown)."""
