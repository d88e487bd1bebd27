"""Haystack 2 filters translated into latentspace's metadata filter DSL.

Haystack writes ``{"operator": "AND" | "OR" | "NOT", "conditions": [...]}`` and
``{"field": "meta.x", "operator": "==", "value": ...}``; latentspace filters are
``{"x": {"$eq": ...}}`` trees on the item metadata, where the Haystack ``meta`` lives. The
translation keeps Haystack's semantics (``haystack.utils.filters.document_matches_filter``):

* a missing field reads as ``None``: ``== None`` matches it, ``!= value`` matches it,
  ``in [..., None]`` matches it, and ``>``, ``>=``, ``<``, ``<=`` against ``None`` match
  nothing;
* ``NOT`` negates the AND of its conditions; an empty AND matches everything, an empty OR
  (and so an empty NOT) nothing;
* ordering operators take numbers, or strings that are ISO 8601 dates (compared as strings by
  code point, right for dates written in one format and time zone); a datetime value is
  written in ISO format.

Differences that remain: values compare by JSON type (``True`` never equals ``1``, nor an
ISO date another spelling of the same instant), only ``meta`` fields can be filtered (a bare
name that is no Document field is read as a meta key, as Haystack does for converted legacy
filters), and a key segment must match ``[A-Za-z0-9_][A-Za-z0-9_-]{0,63}``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from haystack.errors import FilterError

__all__ = ["MATCH_ALL", "MATCH_NONE", "RESERVED", "translate_filters"]

RESERVED = "_haystack"
"""The metadata key the document store keeps its own fields under (never a user's meta)."""

MATCH_ALL: dict[str, Any] = {}
MATCH_NONE: dict[str, Any] = {"$not": {}}

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")
_MAX_DEPTH = 8
_MAX_IN = 1024  # values the server takes in one $in list
_DOCUMENT_FIELDS = {"id", "content", "blob", "meta", "score", "embedding", "sparse_embedding"}
_ORDERING = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
_COMPARISONS = {"==", "!=", "in", "not in", *_ORDERING}
_LOGICAL = {"AND", "OR", "NOT"}

Scalar = str | int | float | bool | None


def translate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The latentspace filter equivalent to a Haystack filter.

    Args:
        filters: A Haystack 2 filter (a logical or a comparison condition), or ``None`` /
            ``{}`` for no filter.

    Returns:
        The latentspace filter, or ``None`` when ``filters`` is empty.

    Raises:
        FilterError: a malformed filter (a missing ``operator``, ``conditions``, ``field`` or
            ``value`` key, an unknown operator), a value the operator cannot take (a non-list
            for ``in``, a list or a non-date string for ``>``), or a field latentspace cannot
            filter on (not under ``meta``, or a key outside the key grammar).
    """
    if filters is None or filters == {}:
        return None
    return _node(filters)


def _node(node: object) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise FilterError(f"a filter condition must be a dict, got {node!r}")
    if "field" in node:
        return _comparison(node)
    return _logical(node)


def _logical(node: dict[str, Any]) -> dict[str, Any]:
    if "operator" not in node:
        raise FilterError(f"'operator' key missing in {node}")
    if "conditions" not in node:
        raise FilterError(f"'conditions' key missing in {node}")
    operator, conditions = node["operator"], node["conditions"]
    if operator not in _LOGICAL:
        raise FilterError(f"unknown logical operator {operator!r}; use one of {sorted(_LOGICAL)}")
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, got {conditions!r}")
    parts = [_node(condition) for condition in conditions]
    if operator == "OR":
        return _any(parts)
    every = _every(parts)
    return every if operator == "AND" else _negate(every)


def _every(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not parts:
        return MATCH_ALL
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _any(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not parts:
        return MATCH_NONE
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _negate(spec: dict[str, Any]) -> dict[str, Any]:
    if spec == MATCH_NONE:
        return MATCH_ALL
    return MATCH_NONE if spec == MATCH_ALL else {"$not": spec}


def _key(field: object) -> str:
    if not isinstance(field, str):
        raise FilterError(f"'field' must be a string, got {field!r}")
    if field.startswith("meta."):
        path = field[len("meta.") :]
    elif field in _DOCUMENT_FIELDS:
        raise FilterError(
            f"latentspace filters on meta fields only, not {field!r}: use 'meta.<key>'"
        )
    elif "." in field:
        raise FilterError(f"cannot filter on {field!r}: use 'meta.<key>' for a meta field")
    else:
        path = field  # a converted legacy filter: a bare name is a meta key
    parts = path.split(".")
    if len(parts) > _MAX_DEPTH or not all(_SEGMENT.match(p) for p in parts):
        raise FilterError(
            f"cannot filter on {field!r}: a meta key is at most {_MAX_DEPTH} dot-separated "
            "names of letters, digits, '_' or '-' (64 characters each)"
        )
    if parts[0] == RESERVED:
        raise FilterError(f"{RESERVED!r} is reserved for the document store's own fields")
    return path


def _scalar(value: object, operator: str) -> Scalar:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"operator {operator!r} takes finite numbers, got {value!r}")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise FilterError(
        f"operator {operator!r} takes a string, number, boolean, datetime or None, "
        f"got {type(value).__name__}"
    )


def _is_iso_date(value: str) -> bool:
    shaped = (
        len(value) >= 10
        and value[:4].isdigit()
        and value[4] == "-"
        and value[5:7].isdigit()
        and value[7] == "-"
        and value[8:10].isdigit()
        and (len(value) == 10 or value[10] in "Tt ")
    )
    if not shaped:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _comparison(node: dict[str, Any]) -> dict[str, Any]:
    if "operator" not in node:
        raise FilterError(f"'operator' key missing in {node}")
    if "value" not in node:
        raise FilterError(f"'value' key missing in {node}")
    operator, value = node["operator"], node["value"]
    if operator not in _COMPARISONS:
        raise FilterError(
            f"unknown comparison operator {operator!r}; use one of {sorted(_COMPARISONS)}"
        )
    key = _key(node["field"])
    if operator in ("==", "!="):
        return _equal(key, _scalar(value, operator), negate=operator == "!=")
    if operator in ("in", "not in"):
        return _membership(key, value, operator)
    return _ordering(key, value, operator)


def _equal(key: str, value: Scalar, *, negate: bool) -> dict[str, Any]:
    if value is not None:
        return {key: {"$ne" if negate else "$eq": value}}
    # a missing field reads as None, as a stored null does
    if negate:
        return {key: {"$exists": True, "$ne": None}}
    return {"$or": [{key: {"$exists": False}}, {key: {"$eq": None}}]}


def _membership(key: str, value: object, operator: str) -> dict[str, Any]:
    if not isinstance(value, list):
        raise FilterError(
            f"operator {operator!r} takes a list, got {type(value).__name__}: {value!r}"
        )
    values = [_scalar(v, operator) for v in value]
    parts: list[dict[str, Any]] = [
        {key: {"$in": values[start : start + _MAX_IN]}} for start in range(0, len(values), _MAX_IN)
    ]
    if any(v is None for v in values):
        parts.append({key: {"$exists": False}})
    if operator == "in":
        return _any(parts)
    if len(parts) == 1 and "$in" in parts[0][key]:
        return {key: {"$nin": parts[0][key]["$in"]}}
    return _negate(_any(parts))


def _ordering(key: str, value: object, operator: str) -> dict[str, Any]:
    if value is None:
        return MATCH_NONE  # None never compares, as in Haystack
    if isinstance(value, list | tuple | dict | set):
        raise FilterError(f"operator {operator!r} cannot take a {type(value).__name__}")
    target = _scalar(value, operator)
    if isinstance(target, bool) or target is None:
        raise FilterError(f"operator {operator!r} takes a number or an ISO date, got {value!r}")
    if isinstance(target, str) and not _is_iso_date(target):
        raise FilterError(
            f"operator {operator!r} compares strings only when they are ISO 8601 dates, "
            f"got {target!r}"
        )
    return {key: {_ORDERING[operator]: target}}
