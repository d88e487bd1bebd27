from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from latentspace.embedder import TextCache, l2_normalise
from latentspace.embedder.base import batched, state_dict_fingerprint
from latentspace.errors import InvalidInput


def test_l2_normalise_returns_unit_float32_rows() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("bad", [[0.0, 0.0], [np.nan, 1.0], [np.inf, 1.0]])
def test_l2_normalise_refuses_rows_without_direction(bad: list[float]) -> None:
    with pytest.raises(InvalidInput, match=r"rows \[1\] are zero or not finite"):
        l2_normalise(np.array([[1.0, 0.0], bad]))


def test_batched_covers_everything_in_order() -> None:
    assert [list(b) for b in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)


def test_text_cache_computes_each_distinct_text_once() -> None:
    cache, compute = TextCache(capacity=10), CountingEncoder()
    first = cache.encode(["a", "bb", "a"], compute)
    second = cache.encode(["bb", "ccc"], compute)
    assert compute.calls == [["a", "bb"], ["ccc"]]
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(first[1], second[0])
    assert (cache.hits, cache.misses) == (2, 3)


def test_text_cache_evicts_least_recently_used() -> None:
    cache, compute = TextCache(capacity=2), CountingEncoder()
    cache.encode(["a", "b"], compute)
    cache.encode(["a"], compute)  # b is now the oldest
    cache.encode(["c"], compute)
    cache.encode(["a", "b"], compute)
    assert compute.calls[-1] == ["b"]
    assert len(cache) == 2


def test_text_cache_of_size_zero_is_off() -> None:
    cache, compute = TextCache(capacity=0), CountingEncoder()
    cache.encode(["a"], compute)
    cache.encode(["a"], compute)
    assert len(compute.calls) == 2
    assert len(cache) == 0


def test_state_dict_fingerprint_sees_every_byte() -> None:
    import torch

    state = {"w": torch.zeros(3), "b": torch.ones(2)}
    same = {"b": torch.ones(2), "w": torch.zeros(3)}
    changed = {"w": torch.tensor([0.0, 0.0, 1e-7]), "b": torch.ones(2)}
    assert state_dict_fingerprint(state) == state_dict_fingerprint(same)
    assert state_dict_fingerprint(state) != state_dict_fingerprint(changed)
    assert len(state_dict_fingerprint(state)) == 64
