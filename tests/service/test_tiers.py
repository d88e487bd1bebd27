"""Duplicate judgement on its own: a batch's verdicts equal a one-pair-at-a-time reference,
and the stored-item probe through HNSW finds what exact search finds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from latentspace.index.hamming import bit_distance
from latentspace.service import collections, items, lifecycle
from latentspace.service.context import Context
from latentspace.service.tiers import (
    Candidate,
    Cuts,
    DuplicatePolicy,
    judge_batch,
    rank,
    stored_findings,
    tier_of,
)
from latentspace.settings import Settings
from latentspace.types import DuplicateTier
from latentspace.vectors import unit_rows

CUTS = Cuts(cosine=0.95, hamming=10)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = lifecycle.start(Settings(data_dir=tmp_path / "data"))
    yield context
    lifecycle.stop(context)


def batch(rng: np.random.Generator, n: int, dim: int = 16) -> list[Candidate]:
    """Candidates with repeated content, hashes a few bits apart and near vectors."""
    base = rng.normal(size=(n // 3, dim))
    hashes = rng.integers(0, 2**62, len(base))
    out = []
    for i in range(n):
        j = int(rng.integers(0, len(base)))
        vector = base[j] + rng.normal(scale=rng.choice([0.01, 0.2, 1.0]), size=dim)
        phash = None
        if rng.random() < 0.5:
            flips = rng.choice(62, size=int(rng.integers(0, 16)), replace=False)
            phash = int(hashes[j]) ^ sum(1 << int(b) for b in flips)
        sha = f"sha{j}" if rng.random() < 0.2 else f"own{i}"
        out.append(Candidate(f"c{i}", sha, phash, unit_rows(vector[None, :])[0]))
    return out


def reference(candidates: list[Candidate], policy: DuplicatePolicy) -> list[tuple]:
    """The rule, one pair at a time: the strongest tier any earlier kept candidate shares,
    the earliest of those in that tier."""
    kept: list[int] = []
    out = []
    for n, c in enumerate(candidates):
        best: tuple[DuplicateTier, int] | None = None
        for j in kept:
            other = candidates[j]
            bits = None
            if c.phash is not None and other.phash is not None:
                bits = bit_distance(c.phash, other.phash)
            tier = tier_of(c.sha256 == other.sha256, bits, float(c.vector @ other.vector), CUTS)
            if tier is not None and (best is None or rank(tier) < rank(best[0])):
                best = (tier, j)
        action = policy.action(best[0]) if best is not None else "store"
        if action == "store":
            kept.append(n)
        out.append((best and (best[0], candidates[best[1]].external_id), action))
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "policy",
    [DuplicatePolicy(), DuplicatePolicy(identical="skip", same_image="store", similar="skip")],
)
def test_batch_verdicts_equal_the_pairwise_rule(
    ctx: Context, seed: int, policy: DuplicatePolicy
) -> None:
    collections.create(ctx, "c", dim=16)
    collection = collections.get(ctx, "c")
    candidates = batch(np.random.default_rng(seed), 120)
    verdicts = judge_batch(ctx, collection, candidates, policy, CUTS)
    got = [(v.duplicate and (v.duplicate.tier, v.duplicate.id), v.action) for v in verdicts]
    want = reference(candidates, policy)
    assert got == want
    tiers = {w[0][0] for w in want if w[0] is not None}
    assert tiers == {"identical", "same_image", "similar"}, "the batch must exercise each tier"


def test_hnsw_probe_finds_what_exact_search_finds(ctx: Context) -> None:
    rng = np.random.default_rng(7)
    dim, n = 32, 6000
    centres = rng.normal(size=(60, dim))
    stored = unit_rows(centres[rng.integers(0, 60, n)] + 0.6 * rng.normal(size=(n, dim)))
    collections.create(ctx, "h", dim=dim, index="hnsw")
    for start in range(0, n, 1000):
        ids = [f"s{i}" for i in range(start, start + 1000)]
        items.ingest_vectors(ctx, "h", stored[start : start + 1000], ids=ids)
    collections.save(ctx, "h")
    collection = collections.get(ctx, "h")
    assert collections.stats(ctx, "h").index_kind == "hnsw"
    # near copies of stored items (cosine about 0.95-0.99) and unrelated vectors
    targets = rng.integers(0, n, 300)
    near = unit_rows(
        stored[targets] + rng.uniform(0.01, 0.06, (300, 1)) * rng.normal(size=(300, dim))
    )
    far = unit_rows(rng.normal(size=(100, dim)))
    queries = np.vstack([near, far])
    candidates = [Candidate(f"q{i}", f"q{i}", None, v) for i, v in enumerate(queries)]
    found = stored_findings(ctx, collection, candidates, CUTS)
    exact = queries @ stored.T
    expected = 0
    for i, findings in enumerate(found):
        best = int(np.argmax(exact[i]))
        if exact[i, best] >= CUTS.cosine:
            expected += 1
            assert findings, f"query {i}: s{best} at cosine {exact[i, best]:.3f} was missed"
            assert findings[0].id == f"s{best}"
        else:
            assert not findings
    assert expected > 200, "most near copies must lie above the cut"
