"""What one committed SQL transaction changed in a collection, as the live views hear it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from latentspace.store.tables import CollectionRow

__all__ = ["Commit", "HitRow", "View"]

# Bytes a row holds beyond its strings' characters: the object, its int id, its slot in the
# cache, the string headers and the 64-character sha256 (tracemalloc over 100k rows: 390).
_ROW_OVERHEAD = 390


@dataclass(frozen=True, slots=True)
class HitRow:
    """The fields a hit shows of one live item; the metadata as JSON text, so each hit
    decodes a fresh dict and no caller can change the cached one."""

    id: int
    external_id: str
    metadata_json: str
    text: str | None
    uri: str | None
    document_id: str | None
    sha256: str

    @classmethod
    def of(
        cls,
        item_id: int,
        external_id: str,
        metadata: dict[str, Any],
        text: str | None,
        uri: str | None,
        document_id: str | None,
        sha256: str,
    ) -> HitRow:
        """A row from its fields, the metadata a JSON object."""
        encoded = (
            json.dumps(metadata, separators=(",", ":"), ensure_ascii=False) if metadata else "{}"
        )
        return cls(item_id, external_id, encoded, text, uri, document_id, sha256)

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata, decoded afresh."""
        if self.metadata_json == "{}":
            return {}
        decoded: dict[str, Any] = json.loads(self.metadata_json)
        return decoded

    def size(self) -> int:
        """A rough count of the bytes the row holds in memory."""
        strings = (self.external_id, self.metadata_json, self.text, self.uri, self.document_id)
        return _ROW_OVERHEAD + sum(len(s) for s in strings if s is not None)


@dataclass(frozen=True)
class Commit:
    """The changes of one committed transaction, up to oplog sequence ``seq``.

    ``upserts`` are the new vectors by item id, ``deletes`` the items no longer live;
    ``rows`` the fields search hits show of the items it wrote, and ``phashes`` the
    perceptual hash of each item whose content it wrote (None: not an image). ``stale``
    names items whose rows changed in ways the commit does not carry (a metadata patch, or
    another process's write): each view re-reads what it holds of them from SQL.
    """

    seq: int = 0
    upserts: Mapping[int, np.ndarray] = field(default_factory=dict)
    deletes: Sequence[int] = ()
    rows: Sequence[HitRow] = ()
    phashes: Sequence[tuple[int, int | None]] = ()
    stale: Sequence[int] = ()


class View(Protocol):
    """What a process keeps of each collection, kept current by three calls from its owner
    (:class:`~latentspace.live.LiveState`), never by a use-case."""

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Rows of the collection were committed (the owner holds its write lock)."""

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """The collection is gone (deleted, replaced, restored over): drop all of it, and
        its files when ``files`` (this process writes the data directory's files)."""

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """A migration moved the collection's vectors to another model's space: drop what
        depends on the old space (``collection`` is the old row)."""
