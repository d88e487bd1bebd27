"""What a collection's map is made of, and the view that keeps each collection's map
(how a map is made is ``service.maps``)."""

from __future__ import annotations

import pickle
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentspace.atomic import atomic_write
from latentspace.live.commit import Commit
from latentspace.store.tables import CollectionRow

__all__ = ["Cluster", "Fitted", "MapView", "MapViews"]

_FILE = "map.pkl"


@dataclass(frozen=True)
class Cluster:
    """A cluster of the map: its number, size, name, the member nearest its centroid, and
    where its points' centre is on the map."""

    id: int
    size: int
    label: str | None
    example: str
    x: float
    y: float


@dataclass(frozen=True)
class MapView:
    """The map at oplog sequence ``seq``: item ids with their points and cluster numbers
    (-1: in no cluster), fitted at ``fitted_seq`` by ``method``; ``placed`` points were
    written after the fit and placed without refitting."""

    seq: int
    fitted_seq: int
    method: str
    ids: list[str]
    item_ids: np.ndarray
    xy: np.ndarray
    cluster: np.ndarray
    clusters: list[Cluster]
    placed: int = 0


@dataclass
class Fitted:
    """A fitted map: its view at the fit and the projection that places new points."""

    view: MapView
    reducer: Any = field(repr=False)


class MapViews:
    """Each collection's fitted map and its latest extension: in memory, and the fit under
    ``data_dir/maps/<collection id>`` (a view of :class:`~latentspace.live.LiveState`).

    A map is read from its file the first time it is asked for; a deleted collection's map
    and a remodelled one's (a migration moved its vectors to another space, where the old
    projection means nothing) are forgotten, file included when this process writes files.
    """

    def __init__(self, data_dir: Path) -> None:
        self._root = Path(data_dir) / "maps"
        self._fitted: dict[int, Fitted] = {}
        self._views: dict[int, MapView] = {}
        self._lock = threading.Lock()

    def path(self, collection: CollectionRow) -> Path:
        """Where the collection's fitted map is saved."""
        return self._root / str(collection.id) / _FILE

    def fitted(self, collection: CollectionRow) -> Fitted | None:
        """The collection's fitted map (read from its file once); None when none was fitted."""
        with self._lock:
            fitted = self._fitted.get(collection.id)
            if fitted is None:
                path = self.path(collection)
                if not path.is_file():
                    return None
                fitted = pickle.loads(path.read_bytes())  # our own file, see keep_fitted
                self._fitted[collection.id] = fitted
            return fitted

    def keep_fitted(self, collection: CollectionRow, fitted: Fitted) -> None:
        """Save a new fit (atomically) and serve it from now on."""
        atomic_write(self.path(collection), pickle.dumps(fitted, protocol=pickle.HIGHEST_PROTOCOL))
        with self._lock:
            self._fitted[collection.id] = fitted
            self._views.pop(collection.id, None)

    def latest(self, collection: CollectionRow) -> MapView | None:
        """The newest extension made of the collection's map, if any."""
        with self._lock:
            return self._views.get(collection.id)

    def keep_latest(self, collection: CollectionRow, view: MapView) -> None:
        """Keep an extension of the current fit (one made from an older fit is dropped)."""
        with self._lock:
            fitted = self._fitted.get(collection.id)
            if fitted is not None and fitted.view.seq == view.fitted_seq:
                self._views[collection.id] = view

    # -- the view's part in LiveState ----------------------------------------------------
    def committed(self, collection: CollectionRow, commit: Commit) -> None:
        """Nothing to do: reading a map places what the oplog added since (service.maps)."""
        del collection, commit

    def forget(self, collection: CollectionRow, *, files: bool) -> None:
        """Drop the collection's map (its file too when ``files``)."""
        with self._lock:
            self._fitted.pop(collection.id, None)
            self._views.pop(collection.id, None)
        if files:
            shutil.rmtree(self.path(collection).parent, ignore_errors=True)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """A map fitted in the old space places nothing right in the new one: drop it."""
        self.forget(collection, files=files)
