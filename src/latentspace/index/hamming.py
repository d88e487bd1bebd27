"""A Hamming-radius index of 64-bit perceptual hashes: FAISS multi-index hashing.

``IndexBinaryMultiHash`` splits each 64-bit code into ``nhash`` disjoint 16-bit pieces, one
hash table each, and probes every bucket within ``nflip`` bit flips of the query's piece.
By the pigeonhole principle, two codes at Hamming distance ≤ r agree within ``r // nhash``
bits on at least one piece, so probing with ``nflip = r // nhash`` finds every code within
``r``: the search is exact, not approximate, and touches a few hundred buckets rather than
every stored hash. FAISS cannot remove from this index, so removals are tombstones,
filtered out of results, and the index is rebuilt once they outnumber the live codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

__all__ = ["MAX_RADIUS", "HammingIndex", "bit_distance", "hamming", "to_code", "to_signed"]

_BITS = 64
_TABLES = 4  # 4 tables × 16 bits: 65,536 buckets each
MAX_RADIUS = 20  # past a third of the bits, two hashes say nothing about each other


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer a BIGINT column holds."""
    return value - (1 << _BITS) if value >= 1 << (_BITS - 1) else value


def to_code(hashes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Signed (or unsigned) 64-bit hashes as FAISS binary codes, ``(n, 8)`` uint8."""
    values = np.asarray(hashes, dtype=np.int64).astype(np.uint64)
    return values.astype(">u8").view(np.uint8).reshape(-1, 8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between signed 64-bit hashes, broadcast like ``a ^ b``."""
    x = np.asarray(a, dtype=np.int64).view(np.uint64) ^ np.asarray(b, dtype=np.int64).view(
        np.uint64
    )
    counts: np.ndarray = np.bitwise_count(x).astype(np.int64)
    return counts


def bit_distance(a: int, b: int) -> int:
    """Bits that differ between two signed 64-bit hashes (one pair, as Python ints)."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


class HammingIndex:
    """Item ids by 64-bit hash, searched by Hamming radius (not thread-safe: callers lock)."""

    def __init__(self) -> None:
        self._index = faiss.IndexBinaryMultiHash(_BITS, _TABLES, _BITS // _TABLES)
        self._ids: list[int] = []  # FAISS position → item id
        self._codes: list[int] = []  # FAISS position → signed hash, for rebuilds
        self._where: dict[int, int] = {}  # live item id → FAISS position
        self._dead = 0

    def __len__(self) -> int:
        return len(self._where)

    def add(self, item_ids: Sequence[int], hashes: Sequence[int]) -> None:
        """Index ``hashes`` under ``item_ids``; an id already held takes its new hash."""
        if not item_ids:
            return
        self.remove([i for i in item_ids if i in self._where])
        start = len(self._ids)
        self._index.add(to_code(hashes))
        for offset, (item_id, value) in enumerate(zip(item_ids, hashes, strict=True)):
            self._where[item_id] = start + offset
            self._ids.append(item_id)
            self._codes.append(value)

    def remove(self, item_ids: Sequence[int]) -> None:
        """Forget items (absent ids are ignored)."""
        for item_id in item_ids:
            if self._where.pop(item_id, None) is not None:
                self._dead += 1
        if self._dead > max(len(self._where), 1024):
            self._rebuild()

    def _rebuild(self) -> None:
        live = sorted(self._where.items(), key=lambda kv: kv[1])
        ids = [item_id for item_id, _ in live]
        codes = [self._codes[position] for _, position in live]
        self.__init__()  # type: ignore[misc]
        self.add(ids, codes)

    def search(self, hashes: Sequence[int], radius: int) -> list[list[tuple[int, int]]]:
        """For each query hash, the ``(item id, distance)`` of every live code within
        ``radius`` bits, nearest first (ties by item id)."""
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be between 0 and {MAX_RADIUS}, got {radius}")
        if not len(hashes):
            return []
        if not self._where:
            return [[] for _ in hashes]
        self._index.nflip = radius // _TABLES
        # FAISS returns distances strictly below the radius it is given
        limits, distances, positions = self._index.range_search(to_code(hashes), radius + 1)
        found = []
        for q in range(len(hashes)):
            row = []
            for d, p in zip(
                distances[limits[q] : limits[q + 1]].tolist(),
                positions[limits[q] : limits[q + 1]].tolist(),
                strict=True,
            ):
                item_id = self._ids[p]
                if self._where.get(item_id) == p:  # not a tombstone nor a replaced code
                    row.append((item_id, int(d)))
            found.append(sorted(row, key=lambda pair: (pair[1], pair[0])))
        return found
