"""Qdrant filters translated to the DSL pass exactly what Qdrant's semantics pass.

The oracle below is written from Qdrant's filtering documentation, apart from the
translation; the DSL side is ``store.filters.matches``, which the SQL on both databases
and the payload index are held equal to by their own property tests.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentspace.errors import InvalidInput
from latentspace.service.qdrant_filters import translate
from latentspace.store.filters import matches, validate_filter

KEYS = ["a", "b", "n.x"]
WORDS = ["p", "q", "pq", ""]


def lookup(payload: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = payload
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def same(a: Any, b: Any) -> bool:
    # one documented difference: 1 and 1.0 are one number here (Qdrant's integer match
    # leaves a stored 1.0 out)
    number = (int, float)
    if isinstance(a, number) and isinstance(b, number) and bool not in (type(a), type(b)):
        return bool(a == b)
    return type(a) is type(b) and a == b


def holds(value: Any, wanted: Any) -> bool:
    # equal to it, or an array with an element equal to it
    return same(value, wanted) or (isinstance(value, list) and any(same(v, wanted) for v in value))


def in_range(value: Any, bounds: dict[str, Any]) -> bool:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric:
        return False
    ops = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
    return all(ops[k](value, v) for k, v in bounds.items() if v is not None)


def condition(c: dict[str, Any], payload: dict[str, Any]) -> bool:
    if "key" in c:
        found, value = lookup(payload, c["key"])
        if "match" in c:
            m = c["match"]
            if "value" in m:
                return found and holds(value, m["value"])
            if "any" in m:
                return found and any(holds(value, v) for v in m["any"])
            if "except" in m:
                return not (found and any(holds(value, v) for v in m["except"]))
            return isinstance(value, str) and m["text"] in value
        if "range" in c:
            return found and in_range(value, c["range"])
        if "is_null" in c:
            return (found and value is None) is c["is_null"]
        return (not found or value is None) is c["is_empty"]
    if "is_empty" in c:
        found, value = lookup(payload, c["is_empty"]["key"])
        return not found or value is None
    if "is_null" in c:
        found, value = lookup(payload, c["is_null"]["key"])
        return found and value is None
    return qdrant_matches(c, payload)


def listed(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def qdrant_matches(f: dict[str, Any], payload: dict[str, Any]) -> bool:
    must, should, must_not = (listed(f.get(k)) for k in ("must", "should", "must_not"))
    ok = all(condition(c, payload) for c in must)
    ok = ok and (not should or any(condition(c, payload) for c in should))
    ok = ok and not any(condition(c, payload) for c in must_not)
    if f.get("min_should") is not None:
        spec = f["min_should"]
        ok = ok and sum(condition(c, payload) for c in spec["conditions"]) >= spec["min_count"]
    return ok


scalars = st.one_of(
    st.integers(0, 3), st.sampled_from(WORDS), st.booleans(), st.none(), st.floats(0, 3)
)
values = st.one_of(
    scalars, st.lists(st.one_of(st.integers(0, 3), st.sampled_from(WORDS)), min_size=1, max_size=3)
)
payloads = st.builds(
    lambda a, b, x, keep: {
        k: v for k, v in {"a": a, "b": b, "n": {"x": x}}.items() if keep.get(k, True)
    },
    values,
    values,
    values,
    st.dictionaries(st.sampled_from(["a", "b", "n"]), st.booleans()),
)
keywords = st.one_of(st.integers(0, 3), st.sampled_from(WORDS), st.booleans())
matches_ = st.one_of(
    st.builds(lambda v: {"value": v}, keywords),
    st.builds(lambda vs: {"any": vs}, st.lists(st.integers(0, 3), max_size=3)),
    st.builds(lambda vs: {"any": vs}, st.lists(st.sampled_from(WORDS), max_size=3)),
    st.builds(lambda vs: {"except": vs}, st.lists(st.integers(0, 3), max_size=3)),
    st.builds(lambda vs: {"except": vs}, st.lists(st.sampled_from(WORDS), max_size=3)),
    st.builds(lambda t: {"text": t}, st.sampled_from(["p", "q", "pq"])),
)
bounds = st.fixed_dictionaries(
    {},
    optional={k: st.one_of(st.integers(0, 3), st.floats(0, 3)) for k in ("gt", "gte", "lt", "lte")},
).filter(bool)
field_conditions = st.one_of(
    st.builds(lambda k, m: {"key": k, "match": m}, st.sampled_from(KEYS), matches_),
    st.builds(lambda k, r: {"key": k, "range": r}, st.sampled_from(KEYS), bounds),
    st.builds(lambda k, b: {"key": k, "is_null": b}, st.sampled_from(KEYS), st.booleans()),
    st.builds(lambda k, b: {"key": k, "is_empty": b}, st.sampled_from(KEYS), st.booleans()),
    st.builds(lambda k: {"is_empty": {"key": k}}, st.sampled_from(KEYS)),
    st.builds(lambda k: {"is_null": {"key": k}}, st.sampled_from(KEYS)),
)


def filters_of(conditions: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    clause = st.one_of(conditions, st.lists(conditions, max_size=3))
    return st.fixed_dictionaries(
        {},
        optional={
            "must": clause,
            "should": clause,
            "must_not": clause,
            "min_should": st.builds(
                lambda cs, n: {"conditions": cs, "min_count": n},
                st.lists(conditions, max_size=3),
                st.integers(0, 3),
            ),
        },
    )


filters = st.recursive(field_conditions, filters_of, max_leaves=8).filter(
    lambda f: isinstance(f, dict) and "key" not in f and "is_empty" not in f and "is_null" not in f
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters, st.lists(payloads, min_size=1, max_size=6))
def test_the_translation_passes_what_qdrant_passes(
    spec: dict[str, Any], docs: list[dict[str, Any]]
) -> None:
    dsl = translate(spec)
    if dsl is not None:
        validate_filter(dsl)
    for doc in docs:
        assert (dsl is None or matches(dsl, doc)) is qdrant_matches(spec, doc), (spec, dsl, doc)


def test_match_value_on_a_string_is_not_a_substring_test() -> None:
    dsl = translate({"must": [{"key": "a", "match": {"value": "p"}}]})
    assert dsl is not None
    assert matches(dsl, {"a": "p"})
    assert matches(dsl, {"a": ["q", "p"]})
    assert not matches(dsl, {"a": "pq"})
    assert not matches(dsl, {"a": ["pq"]})


def test_an_empty_filter_passes_everything() -> None:
    assert translate(None) is None
    assert translate({}) is None
    assert translate({"must": [], "should": [], "must_not": []}) is None


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"must": [{"has_id": [1]}]}, "filter.must[0]: the has_id"),
        ({"should": {"nested": {"key": "a", "filter": {}}}}, "filter.should[0]: the nested"),
        ({"must": [{"key": "a[].b", "match": {"value": 1}}]}, "array paths"),
        ({"must": [{"key": "a", "geo_radius": {"center": {"lat": 0, "lon": 0}}}]}, "geo_radius"),
        ({"must": [{"key": "a", "values_count": {"gt": 1}}]}, "values_count"),
        ({"must": [{"key": "a", "match": {"phrase": "x y"}}]}, "'phrase' matching"),
        ({"must": [{"key": "a", "match": {"value": 1.5}}]}, "use range"),
        ({"must": [{"key": "a"}]}, "exactly one of"),
        ({"must": [{"key": "a", "range": {"gt": "x", "lt": [1]}}]}, "range.lt"),
        ({"must": [{"key": "a", "match": {"value": 1}}], "filter": {}}, "unknown key 'filter'"),
        ({"must": 3}, "filter.must[0]: a condition is an object"),
        ([1], "a filter is an object"),
        (
            {
                "min_should": {
                    "conditions": [{"key": "a", "match": {"value": i}} for i in range(20)],
                    "min_count": 10,
                }
            },
            "combinations",
        ),
    ],
)
def test_what_cannot_be_translated_is_named(spec: object, named: str) -> None:
    with pytest.raises(
        InvalidInput, match=named.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        translate(spec)
