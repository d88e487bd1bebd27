"""Near-duplicate detection: clusters over a collection, and a check before inserting.

Clusters come from a k-nearest-neighbour search of every live vector against the
collection's own FAISS index (batched, so n queries cost what FAISS costs, never an O(n²)
Python loop), pairs at or above the cosine threshold joined by union-find, and groups of
identical content (same sha256) from SQL joined in as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentspace.errors import InvalidInput, LimitExceeded
from latentspace.service.query import QueryTerm, resolve_terms
from latentspace.service.space import LatentSpace
from latentspace.store import repository as repo

__all__ = ["ClusterMember", "DuplicateCheck", "DuplicateCluster", "check", "find_clusters"]

_QUERY_BATCH = 1024


@dataclass(frozen=True)
class ClusterMember:
    """An item of a cluster and its cosine to the cluster's first (oldest) item."""

    id: str
    score: float
    uri: str | None
    sha256: str


@dataclass(frozen=True)
class DuplicateCluster:
    """Items that duplicate each other: ``exact`` when all share one sha256, else ``near``."""

    kind: str
    items: list[ClusterMember]


@dataclass(frozen=True)
class DuplicateCheck:
    """Stored items a candidate would duplicate: same bytes, and cosine ≥ threshold."""

    exact: list[str]
    near: list[tuple[str, float]]


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
    space: LatentSpace,
    name: str,
    *,
    threshold: float,
    neighbors: int = 10,
    limit: int = 100,
) -> list[DuplicateCluster]:
    """Duplicate clusters of collection ``name``, largest first, at most ``limit``.

    Args:
        threshold: cosine at or above which two items are near duplicates.
        neighbors: how many nearest neighbours of each item are examined; a cluster larger
            than this is still found whole when its members are linked in a chain.
        limit: most clusters returned.
    """
    _check_threshold(threshold)
    if not 1 <= neighbors <= 100:
        raise LimitExceeded(f"neighbors must be between 1 and 100, got {neighbors}")
    collection = space.collection(name)
    with space.sessions() as session:
        ids, vectors = repo.live_vectors(session=session, collection=collection)
        exact_groups = repo.sha256_groups(session=session, collection=collection)
    if ids.size < 2:
        return []
    position = {int(item_id): i for i, item_id in enumerate(ids.tolist())}
    links = _UnionFind(ids.shape[0])
    for same in exact_groups:
        for row in same[1:]:
            links.union(position[same[0].id], position[row.id])
    if collection.metric == "cosine":
        index = space.indexes.get(collection)
        k = min(neighbors + 1, ids.shape[0])
        for start in range(0, ids.shape[0], _QUERY_BATCH):
            result = index.search(vectors[start : start + _QUERY_BATCH], k)
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
    with space.sessions() as session:
        rows = repo.items_by_ids(session=session, item_ids=[int(ids[i]) for m in groups for i in m])
    clusters = []
    for group in groups:
        seed = vectors[group[0]]
        scores = vectors[group] @ seed
        items = [
            ClusterMember(member.external_id, float(score), member.uri, member.sha256)
            for i, score in zip(group, scores.tolist(), strict=True)
            if (member := rows.get(int(ids[i]))) is not None
        ]
        kind = "exact" if len({m.sha256 for m in items}) == 1 else "near"
        clusters.append(DuplicateCluster(kind, items))
    return clusters


def check(
    space: LatentSpace,
    name: str,
    term: QueryTerm,
    *,
    sha256: str | None,
    threshold: float,
    k: int = 10,
) -> DuplicateCheck:
    """Which stored items the candidate ``term`` (not stored) would duplicate."""
    _check_threshold(threshold)
    collection = space.collection(name)
    exact: Sequence[str] = []
    if sha256 is not None:
        with space.sessions() as session:
            same = repo.items_by_sha256(session=session, collection=collection, digests=[sha256])
        exact = [row.external_id for row in same.get(sha256, [])]
    (query,), _ = resolve_terms(space, collection, [term])
    hits = space.search_vector(name, query.vector, k, min_score=threshold)
    return DuplicateCheck(list(exact), [(h.id, h.score) for h in hits])
