"""Near-duplicate detection: clusters over a collection, a check before inserting, and the
duplicate report of each ingested batch.

Clusters come from a k-nearest-neighbour search of every live vector against the
collection's own FAISS index (batched, so n queries cost what FAISS costs, never an O(n²)
Python loop), pairs at or above the cosine threshold joined by union-find, and groups of
identical content (same sha256) from SQL joined in as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.service import collections, search
from latentspace.service.context import Context
from latentspace.service.intake import Duplicate, content_sha256
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.store import lookups
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import DuplicateKind

__all__ = [
    "ClusterMember",
    "Clusters",
    "DuplicateCheck",
    "DuplicateCluster",
    "check",
    "find_clusters",
    "of_written",
    "threshold_or_default",
]

_QUERY_BATCH = 1024


@dataclass(frozen=True)
class ClusterMember:
    """An item of a cluster and its cosine to the cluster's first (oldest) item; ``kind``
    is ``exact`` when it has the first item's bytes."""

    id: str
    score: float
    uri: str | None
    sha256: str
    kind: DuplicateKind


@dataclass(frozen=True)
class DuplicateCluster:
    """Items that duplicate each other: ``exact`` when all share one sha256, else ``near``."""

    kind: DuplicateKind
    items: list[ClusterMember]


@dataclass(frozen=True)
class Clusters:
    """The clusters found at ``threshold``, largest first."""

    threshold: float
    clusters: list[DuplicateCluster]


@dataclass(frozen=True)
class DuplicateCheck:
    """Stored items a candidate would duplicate: same bytes, and cosine ≥ threshold."""

    exact: list[str]
    near: list[tuple[str, float]]
    threshold: float


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[a] != root:  # path compression
            self.parent[a], a = root, int(self.parent[a])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise InvalidInput(f"threshold must be in (0, 1], got {threshold}")


def find_clusters(
    ctx: Context,
    name: str,
    *,
    threshold: float | None = None,
    neighbors: int = 10,
    limit: int = 100,
) -> Clusters:
    """Duplicate clusters of collection ``name``, largest first, at most ``limit``.

    Args:
        threshold: cosine at or above which two items are near duplicates (default: the
            configured duplicate threshold).
        neighbors: how many nearest neighbours of each item are examined; a cluster larger
            than this is still found whole when its members are linked in a chain.
        limit: most clusters returned.
    """
    threshold = threshold_or_default(ctx, threshold)
    _check_threshold(threshold)
    if not 1 <= neighbors <= 100:
        raise LimitExceeded(f"neighbors must be between 1 and 100, got {neighbors}")
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        ids, vectors = repo.live_vectors(session=session, collection=collection)
        exact_groups = lookups.sha256_groups(session=session, collection=collection)
    if ids.size < 2:
        return Clusters(threshold, [])
    position = {int(item_id): i for i, item_id in enumerate(ids.tolist())}
    links = _UnionFind(ids.shape[0])
    for same in exact_groups:
        for row in same[1:]:
            links.union(position[same[0].id], position[row.id])
    if collection.metric == "cosine":
        k = min(neighbors + 1, ids.shape[0])
        for start in range(0, ids.shape[0], _QUERY_BATCH):
            result = ctx.indexes.search(collection, vectors[start : start + _QUERY_BATCH], k)
            qs, cols = np.nonzero((result.scores >= threshold) & (result.ids >= 0))
            for r, c in zip(qs.tolist(), cols.tolist(), strict=True):
                other = position.get(int(result.ids[r, c]))
                if other is not None and other != start + r:
                    links.union(start + r, other)
    roots = np.array([links.find(i) for i in range(ids.shape[0])])
    members: dict[int, list[int]] = {}
    for i, root in enumerate(roots.tolist()):
        members.setdefault(root, []).append(i)
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    groups = groups[:limit]
    with ctx.sessions() as session:
        rows = repo.items_by_ids(session=session, item_ids=[int(ids[i]) for m in groups for i in m])
    clusters = []
    for group in groups:
        seed = vectors[group[0]]
        scores = vectors[group] @ seed
        first = rows.get(int(ids[group[0]]))
        items = [
            ClusterMember(
                member.external_id,
                float(score),
                member.uri,
                member.sha256,
                "exact" if first is not None and member.sha256 == first.sha256 else "near",
            )
            for i, score in zip(group, scores.tolist(), strict=True)
            if (member := rows.get(int(ids[i]))) is not None
        ]
        kind: DuplicateKind = "exact" if len({m.sha256 for m in items}) == 1 else "near"
        clusters.append(DuplicateCluster(kind, items))
    return Clusters(threshold, clusters)


def threshold_or_default(ctx: Context, threshold: float | None) -> float:
    """``threshold``, or the configured ``duplicate_threshold`` when None."""
    return ctx.settings.search.duplicate_threshold if threshold is None else threshold


def check(
    ctx: Context,
    name: str,
    term: QueryTerm,
    *,
    threshold: float | None = None,
    k: int = 10,
) -> DuplicateCheck:
    """Which stored items the candidate ``term`` (not stored) would duplicate.

    ``exact`` lists items with the same bytes (an image) or the same text; ``near`` the
    others at cosine ≥ ``threshold`` (default: the configured duplicate threshold).
    """
    cut = threshold_or_default(ctx, threshold)
    _check_threshold(cut)
    collection = collections.get(ctx, name)
    content = term.image if term.image is not None else term.text
    if term.text is not None:
        limits.check_text(ctx.settings.limits, term.text)
    exact: list[str] = []
    if content is not None:
        digest = content_sha256(content)
        with ctx.sessions() as session:
            same = lookups.ids_by_sha256(session=session, collection=collection, digests=[digest])
        exact = [external for _, external in same.get(digest, [])]
    (query,), _ = resolve_terms(ctx, collection, [term])
    hits = search.search_vector(ctx, name, query.vector, k, min_score=cut)
    near = [(h.id, h.score) for h in hits if h.id not in exact]
    return DuplicateCheck(exact, near, cut)


def of_written(
    ctx: Context,
    collection: CollectionRow,
    written: list[tuple[int, str, np.ndarray]],
) -> dict[int, Duplicate]:
    """What each newly written ``(item id, sha256, vector)`` duplicates, for a whole batch.

    One SQL lookup of the content hashes, one index search of the rest, one SQL read of the
    candidates.
    """
    if not written:
        return {}
    with ctx.sessions() as session:
        same_bytes = lookups.ids_by_sha256(
            session=session, collection=collection, digests=[sha for _, sha, _ in written]
        )
    found: dict[int, Duplicate] = {}
    for item_id, sha, _ in written:
        exact = [external for other, external in same_bytes.get(sha, []) if other != item_id]
        if exact:
            found[item_id] = Duplicate(exact[0], "exact", 1.0)
    rest = [(item_id, v) for item_id, _, v in written if item_id not in found]
    if not rest or collection.metric != "cosine":  # "near" is a cosine threshold
        return found
    threshold = ctx.settings.search.duplicate_threshold
    result = ctx.indexes.search(collection, np.stack([v for _, v in rest]), 2)
    near: dict[int, tuple[int, float]] = {}
    for row, (item_id, _) in enumerate(rest):
        for other, score in result.hits(row):
            if other != item_id:
                if score >= threshold:
                    near[item_id] = (other, score)
                break
    rows = ctx.hits.rows(collection, [o for o, _ in near.values()])
    for item_id, (other, score) in near.items():
        if other in rows:
            found[item_id] = Duplicate(rows[other].external_id, "near", score)
    return found
