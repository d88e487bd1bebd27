"""What a collection's map is made of, and the view that keeps each collection's map
(how a map is made is ``service.maps``).

A fit is saved as ``data_dir/maps/<collection id>/map.npz``: plain arrays (``np.savez``,
read back with ``allow_pickle=False``, so loading it runs no code) and a JSON header that
names the format version, the collection's id and fingerprint, and a sha256 of the header
and every array. A file that fails any of that — cut short, altered, another collection's,
a folder where the file should be — is damage: the map reads as not fitted and
:meth:`MapViews.damage` says why, until a new fit replaces whatever is there. A
``map.pkl`` left by earlier versions is never unpickled; it reads as an old format.

A fit keeps no projection object: what places points written after it is arrays alone
(:class:`LinearPlacer` for PCA, :class:`NeighbourPlacer` for UMAP).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentspace.atomic import atomic_write_with
from latentspace.live.commit import Commit
from latentspace.store.tables import CollectionRow

__all__ = [
    "Cluster",
    "Fitted",
    "LinearPlacer",
    "MapView",
    "MapViews",
    "NeighbourPlacer",
    "Placer",
]

logger = logging.getLogger(__name__)

_FILE = "map.npz"
_OLD_FILE = "map.pkl"  # earlier versions' pickle: never loaded
_FORMAT = "latentspace-map"
_VERSION = 1
# Points a NeighbourPlacer keeps (a fixed sample of the fit past it), and how many of the
# nearest it averages.
ANCHORS = 20_000
_NEIGHBOURS = 10
_BATCH = 512  # new points compared with the anchors at a time


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


@dataclass(frozen=True)
class LinearPlacer:
    """A linear projection (PCA's): a unit vector ``x`` lands at
    ``(x - mean) @ components.T``, as the fitted projection would place it."""

    mean: np.ndarray  # (dim,) float32
    components: np.ndarray  # (2, dim) float32

    def place(self, unit: np.ndarray) -> np.ndarray:
        """Points (n × 2, float32) of unit vectors (n × dim)."""
        return np.asarray((unit - self.mean) @ self.components.T, dtype=np.float32)


@dataclass(frozen=True)
class NeighbourPlacer:
    """For a projection with no formula for new points (UMAP): a unit vector lands at the
    similarity-weighted mean of the points of its nearest ``anchors`` (fitted vectors,
    at most ``ANCHORS`` of them, with their fitted points ``anchor_xy``)."""

    anchors: np.ndarray  # (m, dim) float16, unit rows
    anchor_xy: np.ndarray  # (m, 2) float32

    @classmethod
    def of(cls, unit: np.ndarray, xy: np.ndarray) -> NeighbourPlacer:
        """The placer of a fit of ``unit`` to ``xy`` (a fixed sample past ``ANCHORS``)."""
        rows = np.arange(unit.shape[0])
        if rows.size > ANCHORS:
            rows = np.sort(np.random.default_rng(0).choice(rows.size, ANCHORS, replace=False))
        return cls(unit[rows].astype(np.float16), np.asarray(xy[rows], dtype=np.float32))

    def place(self, unit: np.ndarray) -> np.ndarray:
        """Points (n × 2, float32) of unit vectors (n × dim)."""
        anchors = self.anchors.astype(np.float32)
        k = min(_NEIGHBOURS, anchors.shape[0])
        out = np.empty((unit.shape[0], 2), dtype=np.float32)
        for start in range(0, unit.shape[0], _BATCH):
            sims = unit[start : start + _BATCH].astype(np.float32) @ anchors.T
            near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            # cosine distances, sharpened as UMAP's memberships are: the nearest weighs 1,
            # one twice the mean distance past it e^-2 times as much
            dist = 1.0 - np.take_along_axis(sims, near, axis=1)
            dist -= dist.min(axis=1, keepdims=True)
            scale = np.maximum(dist.mean(axis=1, keepdims=True), 1e-6)
            weight = np.exp(-2.0 * dist / scale)
            xy = (weight[..., None] * self.anchor_xy[near]).sum(axis=1)
            out[start : start + _BATCH] = xy / weight.sum(axis=1, keepdims=True)
        return out


Placer = LinearPlacer | NeighbourPlacer


@dataclass
class Fitted:
    """A fitted map: its view at the fit and what places new points."""

    view: MapView
    placer: Placer


class MapDamaged(Exception):
    """A saved map that does not load; the message says why."""


class MapViews:
    """Each collection's fitted map and its latest extension: in memory, and the fit under
    ``data_dir/maps/<collection id>`` (a view of :class:`~latentspace.live.LiveState`).

    A map is read from its file the first time it is asked for (a damaged file again only
    once it changed); a deleted collection's map and a remodelled one's (a migration moved
    its vectors to another space, where the old projection means nothing) are forgotten,
    file included when this process writes files.
    """

    def __init__(self, data_dir: Path) -> None:
        self._root = Path(data_dir) / "maps"
        self._fitted: dict[int, Fitted] = {}
        self._views: dict[int, MapView] = {}
        # why a collection's file does not load, with the file's stat when that was found
        self._damage: dict[int, tuple[object, str]] = {}
        self._lock = threading.Lock()

    def path(self, collection: CollectionRow) -> Path:
        """Where the collection's fitted map is saved."""
        return self._root / str(collection.id) / _FILE

    def fitted(self, collection: CollectionRow) -> Fitted | None:
        """The collection's fitted map (read from its file once); None when none was
        fitted or its file does not load (:meth:`damage` says why)."""
        with self._lock:
            fitted = self._fitted.get(collection.id)
            if fitted is not None:
                return fitted
            path = self.path(collection)
            stat = _stat(path), _stat(path.with_name(_OLD_FILE))
            known = self._damage.get(collection.id)
            if known is not None and known[0] == stat:
                return None
            try:
                fitted = _load(path, collection)
            except MapDamaged as damage:
                self._damage[collection.id] = (stat, str(damage))
                return None
            self._damage.pop(collection.id, None)
            if fitted is not None:
                self._fitted[collection.id] = fitted
            return fitted

    def damage(self, collection: CollectionRow) -> str | None:
        """Why the collection's saved map does not load; None when it loads or there is none."""
        self.fitted(collection)
        with self._lock:
            known = self._damage.get(collection.id)
            return None if known is None else known[1]

    def keep_fitted(self, collection: CollectionRow, fitted: Fitted) -> None:
        """Save a new fit (atomically, over whatever is in its place) and serve it from now on."""
        path = self.path(collection)
        for folder in (self._root, path.parent):
            if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
                folder.unlink()
        if path.is_dir() and not path.is_symlink():  # a file or link the rename replaces
            shutil.rmtree(path)
        atomic_write_with(path, lambda tmp: _save(tmp, collection, fitted))
        _remove(path.with_name(_OLD_FILE))
        with self._lock:
            self._fitted[collection.id] = fitted
            self._views.pop(collection.id, None)
            self._damage.pop(collection.id, None)

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
            self._damage.pop(collection.id, None)
        if files:
            _remove(self.path(collection).parent)

    def remodelled(self, collection: CollectionRow, *, files: bool) -> None:
        """A map fitted in the old space places nothing right in the new one: drop it."""
        self.forget(collection, files=files)


# -- the file -----------------------------------------------------------------------------


def _stat(path: Path) -> object:
    try:
        s = path.stat()
    except OSError:
        return None
    return s.st_ino, s.st_size, s.st_mtime_ns, s.st_mode


def _remove(path: Path) -> None:
    # Whatever is at ``path``: a folder with what it holds, a file, a link.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _arrays(fitted: Fitted) -> dict[str, np.ndarray]:
    view, placer = fitted.view, fitted.placer
    arrays: dict[str, np.ndarray] = {
        "item_ids": np.asarray(view.item_ids, dtype=np.int64),
        "xy": np.asarray(view.xy, dtype=np.float32),
        "cluster": np.asarray(view.cluster, dtype=np.int64),
    }
    if isinstance(placer, LinearPlacer):
        arrays["mean"] = np.asarray(placer.mean, dtype=np.float32)
        arrays["components"] = np.asarray(placer.components, dtype=np.float32)
    else:
        arrays["anchors"] = np.asarray(placer.anchors, dtype=np.float16)
        arrays["anchor_xy"] = np.asarray(placer.anchor_xy, dtype=np.float32)
    return arrays


def _digest(header: bytes, arrays: dict[str, np.ndarray]) -> np.ndarray:
    digest = hashlib.sha256(header)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8)


def _save(tmp: Path, collection: CollectionRow, fitted: Fitted) -> None:
    view = fitted.view
    header = json.dumps(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "collection": collection.id,
            "fingerprint": collection.fingerprint,
            "seq": view.seq,
            "fitted_seq": view.fitted_seq,
            "method": view.method,
            "placer": "linear" if isinstance(fitted.placer, LinearPlacer) else "neighbours",
            "ids": view.ids,
            "clusters": [[c.id, c.size, c.label, c.example, c.x, c.y] for c in view.clusters],
        }
    ).encode()
    arrays = _arrays(fitted)
    members: dict[str, Any] = {
        "header": np.frombuffer(header, dtype=np.uint8),
        "sha256": _digest(header, arrays),
        **arrays,
    }
    with tmp.open("wb") as f:
        np.savez(f, **members)


def _load(path: Path, collection: CollectionRow) -> Fitted | None:
    # The fit saved at ``path``; None when there is none. Raises MapDamaged.
    if not path.exists() and not path.is_symlink():
        if path.with_name(_OLD_FILE).exists():
            raise MapDamaged("the map was saved by an earlier version, in a format no longer read")
        return None
    if not path.is_file():
        raise MapDamaged(f"{path.name} is not a file")
    try:
        with path.open("rb") as f:  # closed here whatever np.load makes of it
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise MapDamaged(f"{path.name} is not a saved map")
            with loaded as npz:
                arrays = {name: npz[name] for name in npz.files}
        return _parse(arrays, collection)
    except MapDamaged:
        raise
    except Exception as e:  # a damaged file fails in as many ways as it can be damaged
        logger.warning("%s does not load", path, exc_info=True)
        why = (e.strerror if isinstance(e, OSError) else None) or str(e)  # no paths
        raise MapDamaged(f"{path.name} does not load ({type(e).__name__}: {why[:200]})") from None


def _parse(arrays: dict[str, np.ndarray], collection: CollectionRow) -> Fitted:
    header_bytes = arrays.pop("header", np.zeros(0, np.uint8)).tobytes()
    digest = arrays.pop("sha256", None)
    if digest is None or not np.array_equal(digest, _digest(header_bytes, arrays)):
        raise MapDamaged("the map file fails its checksum")
    header: dict[str, Any] = json.loads(header_bytes)
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise MapDamaged(f"the map file is not a map of format version {_VERSION}")
    if header.get("collection") != collection.id:
        raise MapDamaged("the map file is another collection's")
    if header.get("fingerprint") != collection.fingerprint:
        raise MapDamaged("the map file was fitted in another model's space")
    ids, clusters = header["ids"], header["clusters"]
    item_ids, xy, cluster = arrays["item_ids"], arrays["xy"], arrays["cluster"]
    n = len(ids)
    _check(all(isinstance(i, str) for i in ids), "ids")
    _check(item_ids.dtype == np.int64 and item_ids.shape == (n,), "item_ids")
    _check(xy.dtype == np.float32 and xy.shape == (n, 2) and bool(np.isfinite(xy).all()), "xy")
    _check(cluster.dtype == np.int64 and cluster.shape == (n,), "cluster")
    placer: Placer
    if header["placer"] == "linear":
        mean, components = arrays["mean"], arrays["components"]
        _check(mean.dtype == np.float32 and mean.shape == (collection.dim,), "mean")
        _check(
            components.dtype == np.float32 and components.shape == (2, collection.dim), "components"
        )
        _check(bool(np.isfinite(mean).all() and np.isfinite(components).all()), "components")
        placer = LinearPlacer(mean, components)
    else:
        _check(header["placer"] == "neighbours", "placer")
        anchors, anchor_xy = arrays["anchors"], arrays["anchor_xy"]
        m = anchors.shape[0]
        _check(
            anchors.dtype == np.float16 and anchors.shape == (m, collection.dim) and m > 0,
            "anchors",
        )
        _check(anchor_xy.dtype == np.float32 and anchor_xy.shape == (m, 2), "anchor_xy")
        _check(bool(np.isfinite(anchors).all() and np.isfinite(anchor_xy).all()), "anchors")
        placer = NeighbourPlacer(anchors, anchor_xy)
    view = MapView(
        seq=_int(header["seq"]),
        fitted_seq=_int(header["fitted_seq"]),
        method=str(header["method"]),
        ids=ids,
        item_ids=item_ids,
        xy=xy,
        cluster=cluster,
        clusters=[
            Cluster(_int(i), _int(s), None if lb is None else str(lb), str(ex), float(x), float(y))
            for i, s, lb, ex, x, y in clusters
        ],
    )
    return Fitted(view, placer)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise MapDamaged(f"the map file's {what} is malformed")


def _int(value: Any) -> int:
    _check(type(value) is int, "header")
    return int(value)
