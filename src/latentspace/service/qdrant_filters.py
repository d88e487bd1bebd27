"""Qdrant's filter language, translated to the metadata filter DSL (``store.filters``).

A Qdrant filter is ``{must, should, must_not, min_should}`` over conditions; the payload
is an item's metadata, so each condition becomes a DSL clause the payload index answers:

    must        every condition holds                         ``$and``
    should      at least one holds (none given: no condition)  ``$or``
    must_not    none holds                                     ``$not`` of an ``$or``
    min_should  at least ``min_count`` of its conditions       an ``$or`` of the ``$and``
                                                               of each combination

``match.value`` matches a field equal to the value or an array holding it, as in Qdrant;
``match.any`` any of the values; ``match.except`` none of them (a missing field passes:
Qdrant's "NOT IN"); ``match.text`` a substring of a string field (what Qdrant does on a
field without a full-text index); ``range`` compares numbers with numbers and strings with
strings (RFC 3339 dates in one format order in time); ``is_null`` a field that is null;
``is_empty`` a field that is missing or null. Keys are dot paths into nested objects.
Numbers are numbers: a stored 1.0 matches ``value: 1`` (Qdrant's integer match leaves it
out).

What the DSL cannot say is an :class:`InvalidInput` naming the clause: ``has_id`` and
``has_vector`` conditions, ``nested`` conditions and ``[]`` array paths, geo conditions,
``values_count``, the full-text variants ``phrase`` and ``text_any``, and ``is_empty`` on
an empty array (it counts as not empty here: the DSL cannot tell ``[]`` from ``[x]``).
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Any

from latentspace.errors import InvalidInput

__all__ = ["translate"]

_CLAUSES = ("must", "should", "must_not", "min_should")
_FIELD_TESTS = (
    "match",
    "range",
    "geo_bounding_box",
    "geo_radius",
    "geo_polygon",
    "values_count",
    "is_empty",
    "is_null",
)
_RANGE_OPS = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
_MAX_COMBINATIONS = 64
_NEVER: dict[str, Any] = {"$and": [{"_": {"$exists": True}}, {"_": {"$exists": False}}]}

Dsl = dict[str, Any] | None  # None: no condition (every item passes)


def translate(spec: object) -> dict[str, Any] | None:
    """The DSL filter that passes what the Qdrant filter ``spec`` passes (None: all).

    Raises:
        InvalidInput: a malformed filter, or a clause the DSL cannot express, naming it
            (``filter.must[1].match``).
    """
    if spec is None:
        return None
    return _filter(spec, "filter")


def _filter(spec: object, where: str) -> Dsl:
    if not isinstance(spec, dict):
        raise InvalidInput(f"{where}: a filter is an object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_CLAUSES))
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r}; a filter has {list(_CLAUSES)}")
    parts: list[dict[str, Any]] = []
    for sub in _conditions(spec.get("must"), f"{where}.must"):
        if sub is not None:
            parts.append(sub)
    should = _conditions(spec.get("should"), f"{where}.should")
    if should and all(sub is not None for sub in should):
        parts.append(_any_of([s for s in should if s is not None]))
    for sub in _conditions(spec.get("must_not"), f"{where}.must_not"):
        parts.append(_NEVER if sub is None else {"$not": sub})
    if spec.get("min_should") is not None:
        parts.append(_min_should(spec["min_should"], f"{where}.min_should"))
    return _all_of(parts)


def _conditions(value: object, where: str) -> list[Dsl]:
    if value is None:
        return []
    listed = value if isinstance(value, list) else [value]
    return [_condition(c, f"{where}[{i}]") or None for i, c in enumerate(listed)]


def _min_should(spec: object, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or not isinstance(spec.get("conditions"), list):
        raise InvalidInput(f"{where}: takes {{conditions: [...], min_count: n}}")
    count = spec.get("min_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInput(f"{where}.min_count: a whole number >= 0, got {count!r}")
    subs = _conditions(spec["conditions"], f"{where}.conditions")
    if count == 0:
        return {}
    if count > len(subs):
        return _NEVER
    if comb(len(subs), count) > _MAX_COMBINATIONS:
        raise InvalidInput(
            f"{where}: {count} of {len(subs)} conditions is more than "
            f"{_MAX_COMBINATIONS} combinations; write it with must and should"
        )
    alternatives = []
    for chosen in combinations(subs, count):
        alternatives.append(_all_of([c for c in chosen if c is not None]) or {})
    return _any_of(alternatives)


def _condition(cond: object, where: str) -> Dsl:
    if not isinstance(cond, dict):
        raise InvalidInput(f"{where}: a condition is an object, got {type(cond).__name__}")
    if "key" in cond:
        return _field(cond, where)
    if not cond or set(cond) & set(_CLAUSES):
        return _filter(cond, where)
    if "is_empty" in cond:
        return _is_empty(_payload_field(cond["is_empty"], f"{where}.is_empty"))
    if "is_null" in cond:
        return {_payload_field(cond["is_null"], f"{where}.is_null"): None}
    for name, instead in (
        ("has_id", "select points by ids (points, retrieve, delete) instead"),
        ("has_vector", "every point here has its one vector"),
        ("nested", "arrays of objects cannot be filtered here"),
    ):
        if name in cond:
            raise InvalidInput(f"{where}: the {name} condition is not supported; {instead}")
    raise InvalidInput(f"{where}: unknown condition with keys {sorted(cond)}")


def _payload_field(value: object, where: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("key"), str):
        raise InvalidInput(f"{where}: takes {{key: <field>}}")
    return _key(value["key"], where)


def _key(key: str, where: str) -> str:
    if "[" in key or "]" in key:
        raise InvalidInput(f"{where}: array paths ({key!r}) are not supported; use dot paths")
    if key.startswith('"') or not key:
        raise InvalidInput(f"{where}: key {key!r}: use a plain dot path such as 'a.b'")
    return key


def _field(cond: dict[str, Any], where: str) -> Dsl:
    if not isinstance(cond["key"], str):
        raise InvalidInput(f"{where}.key: a string, got {type(cond['key']).__name__}")
    key = _key(cond["key"], f"{where}.key")
    unknown = sorted(set(cond) - {"key", *_FIELD_TESTS})
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r} in a field condition")
    tests = [t for t in _FIELD_TESTS if cond.get(t) is not None]
    if len(tests) != 1:
        raise InvalidInput(f"{where}: give exactly one of {list(_FIELD_TESTS)} with key")
    test, value = tests[0], cond[tests[0]]
    if test == "match":
        return _match(key, value, f"{where}.match")
    if test == "range":
        return _range(key, value, f"{where}.range")
    if test in ("is_empty", "is_null"):
        if not isinstance(value, bool):
            raise InvalidInput(f"{where}.{test}: true or false")
        clause = _is_empty(key) if test == "is_empty" else {key: None}
        return clause if value else {"$not": clause}
    raise InvalidInput(f"{where}.{test}: this condition is not supported")


def _match(key: str, match: object, where: str) -> dict[str, Any]:
    if not isinstance(match, dict) or len(match) != 1:
        raise InvalidInput(f"{where}: one of value, any, except or text")
    ((kind, value),) = match.items()
    if kind == "value":
        return _equals(key, _keyword(value, f"{where}.value"))
    if kind in ("any", "except"):
        if not isinstance(value, list):
            raise InvalidInput(f"{where}.{kind}: a list of strings or of integers")
        values = [_keyword(v, f"{where}.{kind}[{i}]") for i, v in enumerate(value)]
        clause = _any_of([_equals(key, v) for v in values]) if values else {key: {"$in": []}}
        return clause if kind == "any" else {"$not": clause}
    if kind == "text":
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{where}.text: a non-empty string")
        return {"$and": [{key: {"$contains": value}}, _is_string(key)]}
    raise InvalidInput(
        f"{where}: {kind!r} matching is not supported; use value, any, except or text"
    )


def _keyword(value: object, where: str) -> str | int | bool:
    if isinstance(value, str | bool | int):
        return value
    raise InvalidInput(
        f"{where}: match takes a string, an integer or a boolean, got {value!r}; "
        "use range for other numbers"
    )


def _equals(key: str, value: str | int | bool) -> dict[str, Any]:
    # Equal, or an array holding it; $contains is also a substring test on strings, so for
    # a string the field must not itself be a string there.
    in_array: dict[str, Any] = {key: {"$contains": value}}
    if isinstance(value, str):
        in_array = {"$and": [in_array, {"$not": _is_string(key)}]}
    return {"$or": [{key: value}, in_array]}


def _is_string(key: str) -> dict[str, Any]:
    return {key: {"$gte": ""}}  # every string sorts at or after the empty one


def _is_empty(key: str) -> dict[str, Any]:
    return {"$or": [{key: {"$exists": False}}, {key: None}]}


def _range(key: str, spec: object, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise InvalidInput(f"{where}: an object of gt, gte, lt, lte")
    unknown = sorted(set(spec) - set(_RANGE_OPS))
    if unknown:
        raise InvalidInput(f"{where}: unknown bound {unknown[0]!r}; use gt, gte, lt, lte")
    ops = {_RANGE_OPS[k]: v for k, v in spec.items() if v is not None}
    if not ops:
        return {"$or": [_is_number(key), _is_string(key)]}
    for op, v in ops.items():
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise InvalidInput(f"{where}.{op[1:]}: a number or an RFC 3339 date, got {v!r}")
    return {key: ops}


def _is_number(key: str) -> dict[str, Any]:
    return {"$or": [{key: {"$gte": 0}}, {key: {"$lt": 0}}]}


def _all_of(parts: list[dict[str, Any]]) -> Dsl:
    parts = [p for p in parts if p]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _any_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if any(not p for p in parts):
        return {}
    return parts[0] if len(parts) == 1 else {"$or": parts}
