"""Duplicate clusters over a collection, and a check of a candidate before inserting it.

Clusters do not chain. Items are taken oldest first; an item that is not yet in a cluster
becomes a representative, and its cluster is every unclustered item that duplicates *it*
(same bytes, perceptual hash within ``hamming`` bits, or cosine ≥ ``threshold``, up to the
weakest tier asked for). So every member is within the threshold of its representative,
and each member's evidence is stated against the representative; two members may be
further apart than that from each other, never a long chain from the first to the last.

Neighbours come from indexes, batched: content hashes from SQL, perceptual hashes from the
collection's Hamming index, vectors from a k-nearest-neighbour search of every live
vector against the collection's own FAISS index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentspace.embedder.images import perceptual_hash
from latentspace.errors import LimitExceeded
from latentspace.index.hamming import bit_distance
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked
from latentspace.service.intake import Duplicate, content_sha256
from latentspace.service.terms import QueryTerm, resolve_terms
from latentspace.service.tiers import (
    Candidate,
    Cuts,
    cuts_of,
    rank,
    stored_findings,
    tier_of,
)
from latentspace.store import dedup, lookups
from latentspace.store import repository as repo
from latentspace.store.tables import ItemRow
from latentspace.types import DuplicateTier
from latentspace.vectors import as_vector, unit_rows

__all__ = [
    "Cluster",
    "ClusterMember",
    "Clusters",
    "DuplicateCheck",
    "check",
    "find_clusters",
    "keep_order",
]

_QUERY_BATCH = 1024


@dataclass(frozen=True)
class ClusterMember:
    """An item of a cluster with its evidence against the representative (whose own entry
    has ``tier`` None, cosine 1 and 0 bits), and what the keep suggestion compares."""

    id: str
    tier: DuplicateTier | None
    cosine: float
    hamming: int | None
    uri: str | None
    pixels: int | None
    size_bytes: int | None
    metadata_keys: int


@dataclass(frozen=True)
class Cluster:
    """A representative and the items that duplicate it (``members``, representative
    first); ``tier`` is the weakest tier among them; ``keep`` the suggested item to keep."""

    representative: str
    keep: str
    tier: DuplicateTier
    members: list[ClusterMember]


@dataclass(frozen=True)
class Clusters:
    """The clusters found with these cuts, largest first."""

    cuts: Cuts
    tier: DuplicateTier
    clusters: list[Cluster]


@dataclass(frozen=True)
class DuplicateCheck:
    """The stored items a candidate would duplicate, strongest first."""

    findings: list[Duplicate]
    cuts: Cuts


def keep_order(row: ItemRow) -> tuple[int, int, int, int]:
    """Sort key of the keep suggestion, best first: most pixels, then most bytes, then
    most metadata, then the oldest (as Immich suggests which copy to keep)."""
    return (-(row.pixels or 0), -(row.size_bytes or 0), -len(row.metadata_), row.id)


def find_clusters(
    ctx: Context,
    name: str,
    *,
    threshold: float | None = None,
    hamming: int | None = None,
    tier: DuplicateTier = "similar",
    neighbors: int = 10,
    limit: int = 100,
) -> Clusters:
    """Duplicate clusters of collection ``name``, largest first, at most ``limit``.

    Args:
        threshold: cosine of the ``similar`` tier (default: the configured one).
        hamming: bits of the ``same_image`` tier (default: the configured one).
        tier: the weakest tier that makes a duplicate (``identical`` or ``same_image``
            leave similar shots out).
        neighbors: nearest neighbours of each item examined for the ``similar`` tier.
        limit: most clusters returned.

    Raises:
        InvalidInput: a threshold or radius out of range (LimitExceeded: ``neighbors``).
    """
    cuts = cuts_of(ctx, threshold, hamming)
    if not 1 <= neighbors <= 100:
        raise LimitExceeded(f"neighbors must be between 1 and 100, got {neighbors}")
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        ids, vectors = repo.live_vectors(session=session, collection=collection)
        groups = lookups.sha256_groups(session=session, collection=collection)
        hashed_ids, hashes = dedup.live_phashes(session=session, collection=collection)
    if ids.size < 2:
        return Clusters(cuts, tier, [])
    order = np.argsort(ids, kind="stable")
    ids, vectors = ids[order], unit_rows(vectors[order])
    position = {int(item_id): i for i, item_id in enumerate(ids.tolist())}
    near: list[set[int]] = [set() for _ in range(ids.size)]
    for group in groups:
        members = [position[r.id] for r in group if r.id in position]
        for p in members:
            near[p].update(members)
    phash = dict(zip(hashed_ids.tolist(), hashes.tolist(), strict=True))
    if rank(tier) >= rank("same_image") and hashed_ids.size:
        found = ctx.live.phashes.search(collection, hashes.tolist(), cuts.hamming)
        for item_id, hits in zip(hashed_ids.tolist(), found, strict=True):
            if item_id in position:
                near[position[item_id]].update(position[o] for o, _ in hits if o in position)
    if tier == "similar" and collection.metric == "cosine":
        k = min(neighbors + 1, ids.size)
        for start in range(0, ids.size, _QUERY_BATCH):
            result = ctx.live.indexes.search(collection, vectors[start : start + _QUERY_BATCH], k)
            for r in range(result.ids.shape[0]):
                near[start + r].update(
                    position[o] for o, s in result.hits(r) if s >= cuts.cosine and o in position
                )
    shas = {r.id: r.sha256 for g in groups for r in g}
    groups_found = _leaders(ids, vectors, near, shas, phash, cuts, tier)
    groups_found.sort(key=lambda g: (-len(g), g[0][0]))
    groups_found = groups_found[:limit]
    with ctx.sessions() as session:
        rows = repo.items_by_ids(
            session=session, item_ids=[item_id for g in groups_found for item_id, *_ in g]
        )
    return Clusters(cuts, tier, [c for g in groups_found if (c := _cluster(g, rows)) is not None])


# (item id, tier or None for the representative, cosine, bits)
_Entry = tuple[int, DuplicateTier | None, float, int | None]


def _leaders(
    ids: np.ndarray,
    vectors: np.ndarray,
    near: list[set[int]],
    shas: dict[int, str],
    phash: dict[int, int],
    cuts: Cuts,
    weakest: DuplicateTier,
) -> list[list[_Entry]]:
    # Oldest first: an unclustered item with unclustered duplicates leads a cluster of them.
    # Copies first: a pass of the identical and same-image tiers, then (when asked) one of
    # similar shots, in which the clusters found so far take more members and unclustered
    # items lead new ones; so a weak encoder's loose cosines never pull an image away
    # from its own copies.
    taken = np.zeros(ids.size, bool)
    clusters: dict[int, list[_Entry]] = {}
    passes = [min(weakest, "same_image", key=rank)]
    if weakest == "similar":
        passes.append("similar")
    for upto in passes:
        for p in range(ids.size):
            if taken[p] and p not in clusters:
                continue  # a member of an older item's cluster
            entries = []
            for q in sorted(near[p] - {p}):
                entry = None if taken[q] else _entry(p, q, ids, vectors, shas, phash, cuts, upto)
                if entry is not None:
                    entries.append(entry)
            if entries:
                taken[p] = True
                for other, *_ in entries:
                    taken[np.searchsorted(ids, other)] = True
                rep = int(ids[p])
                clusters.setdefault(p, [(rep, None, 1.0, 0 if rep in phash else None)])
                clusters[p].extend(entries)
    return [clusters[p] for p in sorted(clusters)]


def _entry(
    p: int,
    q: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    shas: dict[int, str],
    phash: dict[int, int],
    cuts: Cuts,
    upto: DuplicateTier,
) -> _Entry | None:
    # Item q as a member of item p's cluster, if it duplicates p in a tier up to ``upto``.
    rep, other = int(ids[p]), int(ids[q])
    same = rep in shas and shas.get(other) == shas[rep]
    bits = bit_distance(phash[rep], phash[other]) if rep in phash and other in phash else None
    cosine = float(vectors[p] @ vectors[q])
    tier = tier_of(same, bits, cosine, cuts)
    if tier is None or rank(tier) > rank(upto):
        return None
    return other, tier, round(cosine, 6), bits


def _cluster(entries: list[_Entry], rows: dict[int, ItemRow]) -> Cluster | None:
    members = [(e, rows[e[0]]) for e in entries if e[0] in rows]
    if len(members) < 2 or entries[0][0] not in rows:
        return None  # deleted meanwhile
    keep = min((row for _, row in members), key=keep_order)
    weakest = max((e[1] for e, _ in members if e[1] is not None), key=rank)
    return Cluster(
        representative=members[0][1].external_id,
        keep=keep.external_id,
        tier=weakest,
        members=[
            ClusterMember(
                row.external_id,
                tier,
                cosine,
                bits,
                row.uri,
                row.pixels,
                row.size_bytes,
                len(row.metadata_),
            )
            for (_, tier, cosine, bits), row in members
        ],
    )


def check(
    ctx: Context,
    name: str,
    term: QueryTerm,
    *,
    threshold: float | None = None,
    hamming: int | None = None,
    k: int = 10,
) -> DuplicateCheck:
    """Which stored items the candidate ``term`` (not stored) would duplicate, in which
    tier and on what evidence, strongest first (at most ``k``).

    Raises:
        InvalidInput: an unreadable image, a bad text or vector, or cuts out of range.
    """
    cuts = cuts_of(ctx, threshold, hamming)
    collection = collections.get(ctx, name)
    # the term first: it checks and embeds the content, and words its errors
    (query,), _ = resolve_terms(ctx, collection, [term])
    phash = None
    if term.image is not None:
        digest = content_sha256(term.image)
        phash = perceptual_hash(decode_checked(term.image, ctx.settings.limits))
    elif term.text is not None:
        digest = content_sha256(term.text)
    else:
        digest = content_sha256(as_vector(term.vector, name="vector").tobytes())
    candidate = Candidate("", digest, phash, query.vector)
    (findings,) = stored_findings(ctx, collection, [candidate], cuts, k=k)
    return DuplicateCheck(findings, cuts)
