"""The Hamming index finds exactly what a brute-force scan finds, and forgets what it removes."""

from __future__ import annotations

import numpy as np
import pytest

from latentspace.index.hamming import MAX_RADIUS, HammingIndex, hamming, to_signed


def _flip(rng: np.random.Generator, value: int, bits: int) -> int:
    unsigned = value & 0xFFFF_FFFF_FFFF_FFFF
    for bit in rng.choice(64, size=bits, replace=False).tolist():
        unsigned ^= 1 << bit
    return to_signed(unsigned)


@pytest.fixture(scope="module")
def stored() -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(7)
    base = rng.integers(-(2**63), 2**63 - 1, size=5000, dtype=np.int64).tolist()
    # planted near copies at every distance up to 24 bits, so each radius has true hits
    near = [_flip(rng, base[i], i % 25) for i in range(2000)]
    hashes = base + near
    return list(range(1, len(hashes) + 1)), hashes


def _brute(ids: list[int], hashes: list[int], query: int, radius: int) -> list[tuple[int, int]]:
    d = hamming(np.asarray(hashes, np.int64), np.int64(query))
    return sorted(
        ((ids[i], int(d[i])) for i in np.flatnonzero(d <= radius)), key=lambda p: (p[1], p[0])
    )


@pytest.mark.parametrize("radius", [0, 3, 4, 7, 10, 15, 20])
def test_range_search_equals_a_scan(stored: tuple[list[int], list[int]], radius: int) -> None:
    ids, hashes = stored
    index = HammingIndex()
    index.add(ids, hashes)
    rng = np.random.default_rng(radius)
    queries = [_flip(rng, hashes[i], int(rng.integers(0, 12))) for i in range(0, 7000, 70)]
    found = index.search(queries, radius)
    expected = [_brute(ids, hashes, q, radius) for q in queries]
    assert found == expected
    assert sum(len(f) for f in found) > 0  # the queries do have neighbours


def test_removed_and_replaced_codes_are_not_found() -> None:
    index = HammingIndex()
    index.add([1, 2, 3], [0, 1, 3])
    assert [i for i, _ in index.search([0], 2)[0]] == [1, 2, 3]
    index.remove([2, 99])  # an absent id is ignored
    index.add([3], [to_signed(2**64 - 1)])  # item 3 takes a far hash
    assert index.search([0], 2) == [[(1, 0)]]
    assert len(index) == 2


def test_rebuild_after_many_removals_keeps_the_live_codes() -> None:
    index = HammingIndex()
    ids = list(range(5000))
    index.add(ids, [i * 7919 for i in ids])
    index.remove(ids[:4000])  # more tombstones than live codes: rebuilt
    assert len(index) == 1000
    assert index.search([4500 * 7919], 0) == [[(4500, 0)]]
    assert index.search([10 * 7919], 0) == [[]]


def test_radius_is_bounded() -> None:
    index = HammingIndex()
    with pytest.raises(ValueError, match="radius"):
        index.search([0], MAX_RADIUS + 1)
    assert index.search([], 5) == []
    assert index.search([1, 2], 5) == [[], []]
