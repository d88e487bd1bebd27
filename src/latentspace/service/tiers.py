"""The three duplicate tiers, and what an ingested batch duplicates before it is written.

A candidate duplicates a stored item (or an earlier item of its batch) in the strongest
tier that holds:

- ``identical``: the same content hash (sha256 of the bytes, the text or the vector);
- ``same_image``: both are images whose perceptual hashes lie within ``hamming`` bits
  (re-encodes, resizes, grayscale and EXIF-rotated copies of one photo);
- ``similar``: their vectors' cosine is at least ``cosine`` (cosine collections only).

Stored items are found through indexes, never by a scan: the content hash through SQL's
index, perceptual hashes through the collection's multi-index-hashing Hamming index and
vectors through the collection's FAISS index. Within a batch the first occurrence is the
original: an item is compared with the earlier items of its batch that are being kept, so
of two copies in one upload only the second is reported (and skipped, when asked).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from latentspace.errors import DuplicateRejected, InvalidInput
from latentspace.index.base import SearchParams
from latentspace.index.hamming import MAX_RADIUS, bit_distance, hamming
from latentspace.service.context import Context
from latentspace.service.intake import Duplicate
from latentspace.store import lookups
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import DUPLICATE_TIERS, DuplicateAction, DuplicateTier
from latentspace.vectors import unit_rows

__all__ = [
    "Candidate",
    "Cuts",
    "DuplicatePolicy",
    "Verdict",
    "cuts_of",
    "judge_batch",
    "rank",
    "stored_findings",
    "tier_of",
]

# stored neighbours fetched per candidate beyond those asked for, so that the stored
# versions of items the batch rewrites (excluded) do not crowd out the others
_SPARE = 4
# HNSW's candidate list for the similar-tier probe: a neighbour at cosine >= 0.95 lies so
# close that a short list finds it (tests/service/test_tiers.py checks it against exact
# search); the search default (64) walks four times as many candidates per ingested item
_PROBE_EF = 16


def rank(tier: DuplicateTier) -> int:
    """0 for the strongest tier (identical), 2 for the weakest (similar)."""
    return DUPLICATE_TIERS.index(tier)


@dataclass(frozen=True)
class Cuts:
    """Where the tiers begin: cosine for ``similar``, Hamming bits for ``same_image``."""

    cosine: float
    hamming: int


def cuts_of(ctx: Context, cosine: float | None = None, bits: int | None = None) -> Cuts:
    """The caller's cuts, or the configured ones where None.

    Raises:
        InvalidInput: a cosine outside (0, 1] or bits outside [0, 20].
    """
    search = ctx.settings.search
    cosine = search.duplicate_threshold if cosine is None else cosine
    bits = search.duplicate_hamming if bits is None else bits
    if not 0.0 < cosine <= 1.0:
        raise InvalidInput(f"threshold must be in (0, 1], got {cosine}")
    if not 0 <= bits <= MAX_RADIUS:
        raise InvalidInput(f"hamming must be between 0 and {MAX_RADIUS} bits, got {bits}")
    return Cuts(cosine, bits)


@dataclass(frozen=True)
class DuplicatePolicy:
    """What ingest does with a duplicate, per tier (see :data:`DuplicateAction`)."""

    identical: DuplicateAction = "store"
    same_image: DuplicateAction = "store"
    similar: DuplicateAction = "store"

    @classmethod
    def every(cls, action: DuplicateAction) -> DuplicatePolicy:
        """One action for all three tiers."""
        return cls(action, action, action)

    def action(self, tier: DuplicateTier) -> DuplicateAction:
        """The action for ``tier``."""
        action: DuplicateAction = getattr(self, tier)
        return action


@dataclass(frozen=True)
class Candidate:
    """Content on its way in (or being checked): its id, hashes and unit-length vector."""

    external_id: str
    sha256: str
    phash: int | None
    vector: np.ndarray


@dataclass(frozen=True)
class Verdict:
    """What a candidate duplicates (None: nothing) and what ingest does with it."""

    duplicate: Duplicate | None
    action: DuplicateAction


def tier_of(same_bytes: bool, bits: int | None, cosine: float, cuts: Cuts) -> DuplicateTier | None:
    """The strongest tier two items share, given their evidence (None: not duplicates)."""
    if same_bytes:
        return "identical"
    if bits is not None and bits <= cuts.hamming:
        return "same_image"
    if cosine >= cuts.cosine:
        return "similar"
    return None


def _order(d: Duplicate) -> tuple[int, int, float]:
    bits = d.hamming if d.tier == "same_image" and d.hamming is not None else 0
    return rank(d.tier), bits, -(d.cosine or 0.0)


def stored_findings(
    ctx: Context,
    collection: CollectionRow,
    candidates: Sequence[Candidate],
    cuts: Cuts,
    *,
    k: int = 1,
    exclude: Collection[str] = (),
) -> list[list[Duplicate]]:
    """For each candidate, up to ``k`` stored live items it duplicates, strongest first
    (tier, then fewest bits or highest cosine); items named in ``exclude`` never count.

    One SQL lookup of the content hashes, one Hamming search, one FAISS search, and one
    read of the stored vectors and hashes of whatever they found.
    """
    if not candidates:
        return []
    with ctx.sessions() as session:
        same = lookups.ids_by_sha256(
            session=session, collection=collection, digests=[c.sha256 for c in candidates]
        )
    found: list[set[int]] = [{i for i, _ in same.get(c.sha256, [])} for c in candidates]
    imaged = [n for n, c in enumerate(candidates) if c.phash is not None]
    if imaged:
        near = ctx.live.phashes.search(
            collection, [candidates[n].phash or 0 for n in imaged], cuts.hamming
        )
        for n, hits in zip(imaged, near, strict=True):
            found[n].update(item_id for item_id, _ in hits)
    unit = unit_rows(np.stack([c.vector for c in candidates]))
    if collection.metric == "cosine":
        probe = SearchParams(ef_search=max(_PROBE_EF, k + _SPARE))
        result = ctx.live.indexes.search(collection, unit, k + _SPARE, params=probe)
        for n in range(len(candidates)):
            found[n].update(item_id for item_id, score in result.hits(n) if score >= cuts.cosine)
    wanted = sorted(set().union(*found))
    if not wanted:
        return [[] for _ in candidates]
    with ctx.sessions() as session:
        rows = repo.items_by_ids(session=session, item_ids=wanted)
        stored = repo.vectors_of(session=session, item_ids=list(rows), dim=collection.dim)
    out = []
    for n, c in enumerate(candidates):
        findings = []
        for item_id in found[n]:
            row, vector = rows.get(item_id), stored.get(item_id)
            if row is None or vector is None or row.external_id in exclude:
                continue
            bits = (
                bit_distance(c.phash, row.phash)
                if c.phash is not None and row.phash is not None
                else None
            )
            cosine = float(unit[n] @ unit_rows(vector[None, :])[0])
            tier = tier_of(row.sha256 == c.sha256, bits, cosine, cuts)
            if tier is not None:
                findings.append(Duplicate(row.external_id, tier, round(cosine, 6), bits))
        out.append(sorted(findings, key=_order)[:k])
    return out


def judge_batch(
    ctx: Context,
    collection: CollectionRow,
    candidates: Sequence[Candidate],
    policy: DuplicatePolicy,
    cuts: Cuts,
    *,
    exclude: Collection[str] = (),
    names: Sequence[str] | None = None,
) -> list[Verdict]:
    """The verdict on each candidate of a batch, in order, against the stored items and
    the earlier candidates that are kept.

    Args:
        exclude: stored items that do not count (the ones the batch rewrites).
        names: how to name each candidate in an error (default its id).

    Raises:
        DuplicateRejected: a candidate duplicates another in a tier the policy rejects
            (nothing must then be written).
    """
    if not candidates:
        return []
    stored = stored_findings(ctx, collection, candidates, cuts, exclude=exclude)
    batch = _Kept(candidates, cuts, similar=collection.metric == "cosine")
    verdicts = []
    for n, c in enumerate(candidates):
        best = stored[n][0] if stored[n] else None
        earlier = batch.best(n)
        if earlier is not None and (best is None or rank(earlier.tier) < rank(best.tier)):
            best = earlier
        action = policy.action(best.tier) if best is not None else "store"
        if best is not None and action == "reject":
            name = names[n] if names is not None else repr(c.external_id)
            raise DuplicateRejected(
                f"{name} is a duplicate ({best.tier}) of {best.id!r}: cosine {best.cosine}"
                + (f", {best.hamming} bits apart" if best.hamming is not None else "")
                + f"; on_duplicate rejects {best.tier} duplicates, so nothing was written"
            )
        if action == "store":
            batch.keep(n)
        verdicts.append(Verdict(best, action))
    return verdicts


class _Kept:
    """The kept items of a batch so far, and the earliest of them each candidate duplicates
    in its strongest tier (a dict for content hashes, array operations for the rest).

    Which candidates have any earlier candidate within a tier is worked out for the whole
    batch at once; only those are looked at one by one, against the kept ones.
    """

    def __init__(self, candidates: Sequence[Candidate], cuts: Cuts, *, similar: bool) -> None:
        self.candidates, self.cuts = candidates, cuts
        count = len(candidates)
        self.unit = unit_rows(np.stack([c.vector for c in candidates]))
        self.hashes = np.array([c.phash or 0 for c in candidates], dtype=np.int64)
        self.has_hash = np.array([c.phash is not None for c in candidates])
        self.kept = np.zeros(count, dtype=bool)
        self.first: dict[str, int] = {}  # content hash → first kept position
        earlier = np.tril(np.ones((count, count), dtype=bool), -1)  # [n, j]: j comes before n
        # one matrix product for the batch, rather than one per candidate
        self.cosines = self.unit @ self.unit.T if similar and count > 1 else None
        self.close = earlier & (self.cosines >= cuts.cosine) if self.cosines is not None else None
        self.near = None
        hashed = np.flatnonzero(self.has_hash)
        if hashed.size > 1:  # pairs of hashed candidates only (the bit counts are int64)
            h = self.hashes[hashed]
            self.near = np.zeros((count, count), dtype=bool)
            self.near[np.ix_(hashed, hashed)] = hamming(h[:, None], h[None, :]) <= cuts.hamming
            self.near &= earlier
        seen: dict[str, int] = {}
        repeats = np.array([seen.setdefault(c.sha256, n) < n for n, c in enumerate(candidates)])
        self.maybe = repeats.copy()
        for matrix in (self.close, self.near):
            if matrix is not None:
                self.maybe |= matrix.any(axis=1)

    def keep(self, n: int) -> None:
        self.kept[n] = True
        self.first.setdefault(self.candidates[n].sha256, n)

    def _found(self, n: int, j: int, tier: DuplicateTier) -> Duplicate:
        c, other = self.candidates[n], self.candidates[j]
        bits = None
        if c.phash is not None and other.phash is not None:
            bits = bit_distance(c.phash, other.phash)
        cosine = round(float(self.unit[n] @ self.unit[j]), 6)
        return Duplicate(other.external_id, tier, cosine, bits)

    def best(self, n: int) -> Duplicate | None:
        if not self.maybe[n]:
            return None
        same = self.first.get(self.candidates[n].sha256)
        if same is not None:  # kept candidates come before n
            return self._found(n, same, "identical")
        tiers: tuple[tuple[np.ndarray | None, DuplicateTier], ...] = (
            (self.near, "same_image"),
            (self.close, "similar"),
        )
        for matrix, tier in tiers:
            if matrix is not None:
                hits = np.flatnonzero(matrix[n] & self.kept)
                if hits.size:
                    return self._found(n, int(hits[0]), tier)
        return None
