from __future__ import annotations

import numpy as np
import pytest

from latentspace.errors import DimensionMismatch, InvalidInput
from latentspace.index import Term, centroid, combine, direction, explain, slerp, slerp_path

E1, E2, E3 = np.eye(3, dtype=np.float32)


def test_combine_is_the_normalised_weighted_sum() -> None:
    query = combine([Term(E1, 1.0), Term(E2, 2.0), Term(E3, -2.0)])
    np.testing.assert_allclose(query, np.array([1, 2, -2]) / 3, rtol=1e-6)
    assert query.dtype == np.float32


def test_combine_refuses_what_has_no_direction() -> None:
    with pytest.raises(InvalidInput, match="at least one term"):
        combine([])
    with pytest.raises(InvalidInput, match="cancel out"):
        combine([Term(E1, 1.0), Term(E1, -1.0)])
    with pytest.raises(InvalidInput, match="NaN"):
        combine([Term(np.array([np.nan, 0, 0]))])
    with pytest.raises(InvalidInput, match="non-finite weight"):
        combine([Term(E1, float("inf"))])
    with pytest.raises(DimensionMismatch, match="2 dimensions"):
        combine([Term(E1), Term(np.ones(2))])
    with pytest.raises(DimensionMismatch, match="expected 4"):
        combine([Term(E1)], dim=4)
    with pytest.raises(InvalidInput, match="list of numbers"):
        combine([Term(np.array(["a", "b"]))])


def test_centroid_and_direction() -> None:
    np.testing.assert_allclose(centroid([E1, E2]), np.array([1, 1, 0]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(direction([E1, E2], [E3]), [0.5, 0.5, -1.0])
    with pytest.raises(InvalidInput, match="same mean"):
        direction([E1], [E1])
    with pytest.raises(InvalidInput, match="at least one"):
        direction([], [E1])
    with pytest.raises(DimensionMismatch):
        direction([E1], [np.ones(2)])


def test_slerp_walks_the_great_circle_at_constant_speed() -> None:
    path = slerp_path(E1, E2, 5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(path[0], E1, atol=1e-6)
    np.testing.assert_allclose(path[-1], E2, atol=1e-6)
    angles = np.arccos(np.clip((path[:-1] * path[1:]).sum(1), -1, 1))
    np.testing.assert_allclose(angles, np.pi / 8, rtol=1e-5)
    np.testing.assert_allclose(slerp(E1, E2, 0.5), path[2], atol=1e-6)


def test_slerp_edge_cases() -> None:
    np.testing.assert_allclose(slerp_path(E1, 2 * E1, 3), np.stack([E1] * 3))
    with pytest.raises(InvalidInput, match="opposite"):
        slerp_path(E1, -E1, 3)
    with pytest.raises(InvalidInput, match="at least 2 steps"):
        slerp_path(E1, E2, 1)
    with pytest.raises(InvalidInput, match="outside"):
        slerp(E1, E2, 1.5)
    with pytest.raises(InvalidInput, match="zero"):
        slerp(np.zeros(3), E2, 0.5)


def test_explain_reports_each_terms_cosine_to_the_query() -> None:
    terms = [Term(E1, 1.0, "a"), Term(E2, -1.0, "b")]
    parts = explain(terms, combine(terms))
    assert [(p.label, p.weight) for p in parts] == [("a", 1.0), ("b", -1.0)]
    assert parts[0].cosine == pytest.approx(1 / np.sqrt(2))
    assert parts[1].cosine == pytest.approx(-1 / np.sqrt(2))
