"""Fusion of ranked lists, against the formulas worked by hand."""

from __future__ import annotations

import pytest

from latentspace.errors import InvalidInput
from latentspace.index.fusion import Candidate, Fusion, Leg, fuse

VECTOR = Leg("vector", (Candidate(1, 0.9), Candidate(2, 0.8), Candidate(3, 0.5)))
KEYWORD = Leg("keyword", (Candidate(3, 12.0), Candidate(4, 6.0)), weight=0.5)


def _scores(found: list[Candidate]) -> dict[int, float]:
    return {c.item_id: c.score for c in found}


def test_rrf_counts_every_leg_the_same() -> None:
    found = fuse([VECTOR, KEYWORD], Fusion("rrf", k=10))
    best = 2 / 11
    assert _scores(found) == pytest.approx(
        {1: (1 / 11) / best, 2: (1 / 12) / best, 3: (1 / 13 + 1 / 11) / best, 4: (1 / 12) / best}
    )
    assert [c.item_id for c in found] == [3, 1, 2, 4]  # 2 and 4 tie: lower id first


def test_weighted_rrf_counts_each_leg_by_its_weight() -> None:
    found = fuse([VECTOR, KEYWORD], Fusion("weighted", k=10))
    best = 1.5 / 11
    assert _scores(found) == pytest.approx(
        {
            1: (1 / 11) / best,
            2: (1 / 12) / best,
            3: (1 / 13 + 0.5 / 11) / best,
            4: (0.5 / 12) / best,
        }
    )
    assert [c.item_id for c in found] == [3, 1, 2, 4]


def test_relative_score_min_max_scales_each_leg() -> None:
    found = fuse([VECTOR, KEYWORD], Fusion("relative_score"))
    assert _scores(found) == pytest.approx(
        {1: 1 / 1.5, 2: (0.3 / 0.4) / 1.5, 3: (0 + 0.5 * 1) / 1.5, 4: 0.0}
    )


@pytest.mark.parametrize("method", ["rrf", "weighted", "relative_score"])
def test_fused_scores_lie_in_0_1_and_first_everywhere_is_1(method: str) -> None:
    a = Leg("vector", (Candidate(7, 0.3), Candidate(8, 0.1)))
    b = Leg("keyword", (Candidate(7, 3.0), Candidate(9, 1.0)), weight=0.3)
    found = fuse([a, b], Fusion(method, k=60))  # type: ignore[arg-type]
    assert found[0].item_id == 7
    assert found[0].score == pytest.approx(1.0)
    assert all(0.0 <= c.score <= 1.0 + 1e-12 for c in found)


def test_each_hit_keeps_its_place_in_every_leg() -> None:
    found = {c.item_id: c for c in fuse([VECTOR, KEYWORD], Fusion())}
    legs = found[3].legs
    assert legs is not None
    assert (legs["vector"].rank, legs["vector"].score) == (3, 0.5)
    assert (legs["keyword"].rank, legs["keyword"].score) == (1, 12.0)
    assert set(found[4].legs or {}) == {"keyword"}


def test_one_leg_is_returned_as_it_is_and_empty_legs_fuse_to_nothing() -> None:
    assert fuse([VECTOR], Fusion()) == list(VECTOR.candidates)
    assert fuse([Leg("vector", ()), Leg("keyword", ())], Fusion()) == []
    only = fuse([VECTOR, Leg("keyword", ())], Fusion())
    assert [c.item_id for c in only] == [1, 2, 3]


@pytest.mark.parametrize(("method", "k"), [("rank", 10), ("rrf", 0), ("rrf", 10_001)])
def test_bad_fusion_is_refused(method: str, k: int) -> None:
    with pytest.raises(InvalidInput):
        Fusion(method, k)  # type: ignore[arg-type]
