"""What a collection's map is made of, apart from how it is made (``service.maps``): the
context holds a :class:`MapCache` of them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Cluster", "Fitted", "MapCache", "MapView"]


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


@dataclass
class MapCache:
    """Fitted maps and their latest extension, per collection id (one per process)."""

    fitted: dict[int, Fitted] = field(default_factory=dict)
    views: dict[int, MapView] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
