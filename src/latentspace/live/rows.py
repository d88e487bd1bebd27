"""Collection rows by name, read from SQL once and kept until the collection is forgotten or
remodelled (a row changes only when a migration moves the collection to another model)."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from latentspace.live.commit import Commit
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow

__all__ = ["CollectionRows"]


class CollectionRows:
    """The collection-row cache (a view of :class:`~latentspace.live.LiveState`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._rows: dict[str, CollectionRow] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CollectionRow:
        """The row of collection ``name``.

        Raises:
            NotFound: no such collection.
        """
        row = self._rows.get(name)
        if row is None:
            with self._sessions() as session:
                row = repo.get_collection(session=session, name=name)
            with self._lock:
                self._rows[name] = row
        return row

    def peek(self, name: str) -> CollectionRow | None:
        """The row of ``name`` if it is held now (reads no SQL)."""
        return self._rows.get(name)

    def held(self) -> list[CollectionRow]:
        """The rows held now."""
        with self._lock:
            return list(self._rows.values())

    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Nothing to do: writing items changes no collection row."""
        del collection, commit

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop the row (by id as well as name: a caller may know only the id)."""
        del files
        with self._lock:
            for name, row in list(self._rows.items()):
                if name == collection.name or row.id == collection.id:
                    del self._rows[name]

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """The row names another model now: read it again on the next use."""
        self.forget(collection, files=files)
