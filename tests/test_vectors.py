"""Vector hygiene: a batch is checked as a whole and fails as each of its vectors would."""

from __future__ import annotations

import numpy as np
import pytest

from latentspace.errors import DimensionMismatch, InvalidInput
from latentspace.vectors import checked_rows


def _name(i: int) -> str:
    return f"item {i}"


def test_checked_rows_returns_the_batch_as_one_matrix() -> None:
    rows = [np.full(3, i + 1, dtype=np.float32) for i in range(4)]
    matrix = checked_rows(rows, 3, direction=True, name=_name)
    assert matrix.shape == (4, 3)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[2], rows[2])
    lists = checked_rows([[1, 2, 3], [4, 5, 6]], 3, direction=True, name=_name)  # not float32
    np.testing.assert_array_equal(lists, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    assert checked_rows([], 3, direction=True, name=_name).shape == (0, 3)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (np.array([1.0, np.nan, 0.0], dtype=np.float32), InvalidInput, "item 2 contains NaN"),
        (np.array([np.inf, 0.0, 0.0], dtype=np.float32), InvalidInput, "item 2 contains NaN"),
        (np.zeros(3, dtype=np.float32), InvalidInput, "item 2: a zero vector"),
        (np.ones(4, dtype=np.float32), DimensionMismatch, "item 2 has 4 dimensions"),
        ([1.0, 1e39, 0.0], InvalidInput, "item 2 contains NaN"),  # beyond float32: inf
    ],
)
def test_a_bad_row_is_named(bad: object, error: type[Exception], message: str) -> None:
    good = [np.ones(3, dtype=np.float32)] * 2
    with pytest.raises(error, match=message):
        checked_rows([*good, bad, *good], 3, direction=True, name=_name)


def test_zero_rows_pass_without_direction() -> None:
    # Only cosine needs a direction: an L2 or inner-product collection stores a zero vector.
    zeros = [np.zeros(3, dtype=np.float32)] * 2
    np.testing.assert_array_equal(checked_rows(zeros, 3, direction=False, name=_name), 0)
