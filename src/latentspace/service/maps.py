"""A map of a collection: every live item at a 2-D point, in named clusters.

A background job (kind ``map``) fits the projection — UMAP (``umap-learn``, cosine) or,
for small collections and on request, PCA (scikit-learn) — on every live vector, clusters
the 2-D points with HDBSCAN (scikit-learn), names each cluster, and saves the fitted state
under ``data_dir/maps/<collection id>`` as plain arrays (``live.maps``). Reading the map
then costs no refit: the items written since the fit are placed — by PCA's mean and
components, or for UMAP at the similarity-weighted mean of the points of their nearest
fitted vectors — and join the cluster of their nearest neighbour in the latent space;
deleted ones leave. The result is cached per collection and oplog sequence, so a map read
twice without a write between is served as it is.

A saved map that does not load (cut short, altered, another collection's, an old format)
is recorded as damage (``/readyz``) and read as no map, a 404 saying to fit it again; the
next fit replaces the file and clears the damage.

A cluster is named by the label of a vocabulary nearest its centroid (zero-shot, through
the collection's encoder, as ``POST …/classify`` would) when the job was given one, else by
the stored text nearest its centroid; ``example`` is the member nearest the centroid.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from latentspace.errors import InvalidInput, NotFound
from latentspace.live.maps import Cluster, Fitted, LinearPlacer, MapView, NeighbourPlacer, Placer
from latentspace.runner import ClaimedJob, JobOutcome
from latentspace.service import collections
from latentspace.service.classify import Label, build_classifier, label_spec
from latentspace.service.context import Context
from latentspace.service.jobs import JobInfo, submit
from latentspace.store import jobs as jobs_repo
from latentspace.store import oplog
from latentspace.store import repository as repo
from latentspace.store.reads import live_texts
from latentspace.store.tables import CollectionRow
from latentspace.vectors import unit_rows

__all__ = ["KIND", "UMAP_MINIMUM", "Cluster", "MapView", "run", "start", "view"]

logger = logging.getLogger(__name__)

KIND = "map"
MapMethod = Literal["auto", "umap", "pca"]
# Fewer points than this are laid out by PCA under "auto": UMAP's neighbour graph needs
# more points than neighbours, and on a handful of points it says little.
UMAP_MINIMUM = 200


def start(
    ctx: Context,
    name: str,
    *,
    method: MapMethod = "auto",
    vocabulary: Sequence[str] = (),
    min_cluster_size: int | None = None,
) -> JobInfo:
    """Queue a job that fits the map of collection ``name``.

    Raises:
        NotFound: no such collection.
        InvalidInput: a vocabulary for a collection of raw vectors, a bad label, or a
            ``min_cluster_size`` below 2.
    """
    collection = collections.get(ctx, name)
    if min_cluster_size is not None and min_cluster_size < 2:
        raise InvalidInput(f"min_cluster_size must be at least 2, got {min_cluster_size}")
    if vocabulary:
        if collection.model is None:
            raise InvalidInput("naming clusters by a vocabulary needs a collection with a model")
        build_classifier(ctx, collection, label_spec(ctx, [Label(v) for v in vocabulary]))
    with ctx.sessions() as session:
        total = repo.count_live(session=session, collection=collection)
    params = {
        "method": method,
        "vocabulary": list(vocabulary),
        "min_cluster_size": min_cluster_size,
    }
    return submit(ctx, collection, KIND, params, total=total)


def run(ctx: Context, job: ClaimedJob, should_stop: Callable[[], bool]) -> JobOutcome:
    """The job's handler: fit, cluster, name, save."""
    with ctx.sessions() as session:
        collection = jobs_repo.collection_by_id(session=session, collection_id=job.collection_id)
        seq = oplog.last_seq(session=session, collection=collection)
        item_ids, vectors = repo.live_vectors(session=session, collection=collection)
        rows = repo.items_by_ids(session=session, item_ids=item_ids.tolist())
    if should_stop():
        return "stopped"
    if len(item_ids) < 3:
        raise InvalidInput(f"a map needs at least 3 items; the collection holds {len(item_ids)}")
    params = job.params
    unit = unit_rows(vectors)
    method, placer, xy = _fit(unit, params.get("method", "auto"))
    if should_stop():
        return "stopped"
    cluster = _cluster(xy, params.get("min_cluster_size"))
    ids = [rows[int(i)].external_id for i in item_ids]
    centroids = _centroids(unit, cluster)
    vocabulary = list(params.get("vocabulary") or [])
    names = _names(ctx, collection, centroids, vocabulary, item_ids, unit)
    clusters = _summaries(centroids, unit, xy, cluster, ids, names)
    fitted = Fitted(MapView(seq, seq, method, ids, item_ids, xy, cluster, clusters), placer)
    ctx.live.maps.keep_fitted(collection, fitted)
    ctx.live.damage.repaired(collection, "map")
    with ctx.sessions.begin() as session:
        n = len(ids)
        jobs_repo.advance(session=session, job_id=job.id, done=n, total=n, cursor=0)
    logger.info(
        "collection %s: %s map of %d items, %d clusters", collection.name, method, n, len(clusters)
    )
    return "done"


def view(ctx: Context, name: str) -> MapView:
    """The map of collection ``name`` as of now (see the module docstring).

    Raises:
        NotFound: no such collection, no map fitted yet, or a saved map that does not load
            (recorded as damage until the next fit).
    """
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        seq = oplog.last_seq(session=session, collection=collection)
    cached = ctx.live.maps.latest(collection)
    if cached is not None and cached.seq == seq:
        return cached
    fitted = ctx.live.maps.fitted(collection)
    damage = None if fitted is not None else ctx.live.maps.damage(collection)
    fit = f"POST /v1/collections/{collection.name}/map"
    if damage is not None:
        ctx.live.damage.record(collection, "map", f"{damage}; fit the map again ({fit})")
        raise NotFound(
            f"collection {collection.name!r} has no map to serve: {damage}; {fit} fits it again"
        )
    ctx.live.damage.repaired(collection, "map")  # the file loads, or was removed
    if fitted is None:
        raise NotFound(
            f"collection {collection.name!r} has no map yet: POST /v1/collections/"
            f"{collection.name}/map fits one"
        )
    base = cached if cached is not None and cached.fitted_seq == fitted.view.seq else None
    current = _extend(ctx, collection, fitted, base or fitted.view, seq)
    ctx.live.maps.keep_latest(collection, current)
    return current


def _fit(unit: np.ndarray, method: str) -> tuple[str, Placer, np.ndarray]:
    n = unit.shape[0]
    if method == "umap" or (method == "auto" and n >= UMAP_MINIMUM):
        with warnings.catch_warnings():
            # umap-learn warns on import that ParametricUMAP needs TensorFlow (not used)
            warnings.simplefilter("ignore", ImportWarning)
            import umap  # imported here: numba compiles on first use, seconds a process

        reducer = umap.UMAP(
            n_components=2,
            metric="cosine",
            n_neighbors=min(15, n - 1),
            random_state=0,
            n_jobs=1,  # what a fixed random_state implies; said, so UMAP does not warn
        )
        xy = np.asarray(reducer.fit_transform(unit), dtype=np.float32)
        return "umap", NeighbourPlacer.of(unit, xy), xy
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0)
    xy = np.asarray(pca.fit_transform(unit), dtype=np.float32)
    # PCA's own transform, as arrays: (x - mean) @ components.T (no whitening)
    linear = LinearPlacer(
        np.asarray(pca.mean_, dtype=np.float32), np.asarray(pca.components_, dtype=np.float32)
    )
    return "pca", linear, xy


def _cluster(xy: np.ndarray, min_cluster_size: int | None) -> np.ndarray:
    from sklearn.cluster import HDBSCAN

    # √n / 4 (at least 5): on 5k and 50k points around 100 centres it finds all 100
    # (bench/bench_map.py); a fixed share of n merges or drops clusters as n grows.
    size = min_cluster_size or max(5, round(math.sqrt(xy.shape[0]) / 4))
    if xy.shape[0] < size:
        return np.full(xy.shape[0], -1, dtype=np.int64)
    labels = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(xy)
    return np.asarray(labels, dtype=np.int64)


def _centroids(unit: np.ndarray, cluster: np.ndarray) -> dict[int, np.ndarray]:
    return {
        int(c): unit_rows(unit[cluster == c].mean(axis=0, keepdims=True))[0]
        for c in np.unique(cluster)
        if c >= 0
    }


def _names(
    ctx: Context,
    collection: CollectionRow,
    centroids: dict[int, np.ndarray],
    vocabulary: list[str],
    item_ids: np.ndarray,
    unit: np.ndarray,
) -> dict[int, str | None]:
    # By the vocabulary's nearest label, else by the stored text nearest the centroid (its
    # vector is among ``unit``, the live vectors in ``item_ids`` order).
    if not centroids:
        return {}
    keys = sorted(centroids)
    matrix = np.stack([centroids[k] for k in keys])
    if vocabulary:
        spec = label_spec(ctx, [Label(v) for v in vocabulary])
        top = build_classifier(ctx, collection, spec).top(matrix, 1)
        return {k: t[0].label for k, t in zip(keys, top, strict=True)}
    with ctx.sessions() as session:
        texts = live_texts(session=session, collection=collection)
    rows = np.flatnonzero(np.isin(item_ids, np.fromiter(texts, dtype=np.int64, count=len(texts))))
    if not rows.size:
        return dict.fromkeys(keys)
    scores = matrix @ unit[rows].T
    return {
        k: texts[int(item_ids[rows[int(np.argmax(s))]])][:80]
        for k, s in zip(keys, scores, strict=True)
    }


def _summaries(
    centroids: dict[int, np.ndarray],
    unit: np.ndarray,
    xy: np.ndarray,
    cluster: np.ndarray,
    ids: list[str],
    names: dict[int, str | None],
) -> list[Cluster]:
    out = []
    for c, centroid in sorted(centroids.items()):
        members = np.flatnonzero(cluster == c)
        example = members[int(np.argmax(unit[members] @ centroid))]
        x, y = xy[members].mean(axis=0)
        out.append(Cluster(c, len(members), names.get(c), ids[example], float(x), float(y)))
    return out


def _extend(
    ctx: Context, collection: CollectionRow, fitted: Fitted, base: MapView, seq: int
) -> MapView:
    # The ops since ``base`` was made: deleted items leave, new and changed ones are placed
    # by the fit's placer and take the cluster of their nearest mapped neighbour.
    with ctx.sessions() as session:
        ops = oplog.after(session=session, collection=collection, seq=base.seq)
        touched = sorted({item_id for _, op, item_id in ops if op in ("upsert", "delete")})
        live = repo.items_by_ids(session=session, item_ids=touched)
        stored = repo.vectors_of(session=session, item_ids=list(live), dim=collection.dim)
    if not touched:
        return replace(base, seq=seq)
    keep = ~np.isin(base.item_ids, touched)
    ids = [i for i, k in zip(base.ids, keep, strict=True) if k]
    item_ids, xy, cluster = base.item_ids[keep], base.xy[keep], base.cluster[keep]
    new = [i for i in touched if i in stored]
    if new:
        unit = unit_rows(np.stack([stored[i] for i in new]))
        placed = fitted.placer.place(unit).reshape(-1, 2)
        near = ctx.live.indexes.search(collection, unit, 2)
        position = {int(i): n for n, i in enumerate(item_ids)}
        joined = []
        for n, item_id in enumerate(new):
            hits = [h for h, _ in near.hits(n) if h != item_id and h in position]
            joined.append(cluster[position[hits[0]]] if hits else -1)
        ids += [live[i].external_id for i in new]
        item_ids = np.concatenate([item_ids, np.asarray(new, dtype=np.int64)])
        xy = np.concatenate([xy, placed])
        cluster = np.concatenate([cluster, np.asarray(joined, dtype=np.int64)])
    placed_count = base.placed + len(new)
    return MapView(
        seq, base.fitted_seq, base.method, ids, item_ids, xy, cluster, base.clusters, placed_count
    )
