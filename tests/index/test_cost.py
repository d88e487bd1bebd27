"""The exact-search cost model behind `auto`: a measured per-value cost and its limit."""

from __future__ import annotations

import math

import pytest

from latentspace.index.cost import ExactCost, measure


@pytest.mark.parametrize("dim", [32, 384, 512, 1024])
@pytest.mark.parametrize("budget_s", [0.0005, 0.002, 0.01])
def test_the_limit_is_the_largest_size_within_the_budget(dim: int, budget_s: float) -> None:
    cost = ExactCost(seconds_per_value=2.7e-10)
    n = cost.limit(dim, budget_s)
    assert cost.seconds(n, dim) <= budget_s * (1 + 1e-12)
    assert cost.seconds(n + 1, dim) > budget_s


def test_the_limit_halves_when_the_dimension_doubles() -> None:
    cost = ExactCost(seconds_per_value=3e-10)
    assert abs(cost.limit(256, 0.002) - 2 * cost.limit(512, 0.002)) <= 1


def test_a_budget_below_one_vector_still_allows_one() -> None:
    assert ExactCost(seconds_per_value=1e-9).limit(512, 1e-12) == 1


def test_measure_gives_a_finite_positive_cost() -> None:
    cost = measure(nbytes=4 << 20)  # small: this checks the plumbing, not the figure
    assert math.isfinite(cost.seconds_per_value)
    assert 0 < cost.seconds_per_value < 1e-6  # a microsecond per float would be absurd
