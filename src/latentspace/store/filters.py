"""A metadata filter DSL compiled to SQL with bound parameters only.

    {"colour": "red"}                                   implicit $eq
    {"size": {"$gte": 3, "$lt": 10}}                    several operators: all must hold
    {"tags": {"$contains": "cat"}}                      array element, or substring of a string
    {"$or": [{"a.b": {"$in": [1, 2]}}, {"$not": {"c": {"$exists": true}}}]}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains`` on fields, ``$and $or
$not`` on filters. Keys are dot paths into the JSON metadata. Comparisons only match values of
the same JSON type (a number never equals a string, ``true`` never equals ``1``) and a missing
field matches only ``$ne``, ``$nin`` and ``$exists: false`` — the semantics of
:func:`matches`, the Python reference the SQL is tested against on SQLite and PostgreSQL.
Strings order by code point on both databases.

Keys and operators are validated against an allow-list grammar; values reach the database
only as bound parameters, so no caller text is ever spliced into SQL.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB

from latentspace.errors import InvalidInput

__all__ = [
    "MAX_DEPTH",
    "compile_filter",
    "count_nodes",
    "json_kind",
    "matches",
    "validate_filter",
]

MAX_DEPTH = 8
_MAX_IN = 1024
_FANOUT = 8
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")
_FIELD_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains"}
_LOGIC_OPS = {"$and", "$or", "$not"}

Scalar = str | int | float | bool | None


# -- validation ----------------------------------------------------------------------------
def count_nodes(spec: object) -> int:
    """Every JSON value in ``spec`` (objects, their entries, list elements, scalars): what
    compiling and running it costs grows with this, so callers bound it first."""
    count, stack = 0, [spec]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _path(key: str) -> tuple[str, ...]:
    parts = tuple(key.split("."))
    if len(parts) > MAX_DEPTH or not all(_KEY.match(p) for p in parts):
        raise InvalidInput(
            f"invalid filter key {key!r}: use dot-separated names of letters, digits, '_' "
            f"or '-' (at most {MAX_DEPTH} levels of 64 characters)"
        )
    return parts


def _scalar(value: object, where: str) -> Scalar:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{where}: numbers must be finite")
        return value
    raise InvalidInput(f"{where}: expected a string, number, boolean or null, got {value!r}")


def validate_filter(spec: object, depth: int = 0) -> dict[str, Any]:
    """Check a filter's shape, keys, operators and values; returns it unchanged.

    Raises:
        InvalidInput: anything outside the grammar, with what and where.
    """
    if depth > 16:
        raise InvalidInput("filter is nested too deeply")
    if not isinstance(spec, dict):
        raise InvalidInput(f"a filter must be an object, got {type(spec).__name__}")
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidInput(f"{key} takes a non-empty list of filters")
            for sub in value:
                validate_filter(sub, depth + 1)
        elif key == "$not":
            validate_filter(value, depth + 1)
        elif key.startswith("$"):
            raise InvalidInput(f"unknown filter operator {key!r}; use one of {sorted(_LOGIC_OPS)}")
        else:
            _path(key)
            _validate_condition(key, value)
    return spec


def _validate_condition(key: str, condition: object) -> None:
    if not isinstance(condition, dict):
        _scalar(condition, key)
        return
    if not condition:
        raise InvalidInput(f"{key}: empty condition")
    for op, value in condition.items():
        where = f"{key}.{op}"
        if op not in _FIELD_OPS:
            raise InvalidInput(
                f"unknown operator {op!r} on {key!r}; use one of {sorted(_FIELD_OPS)}"
            )
        if op in ("$in", "$nin"):
            if not isinstance(value, list) or len(value) > _MAX_IN:
                raise InvalidInput(f"{where} takes a list of at most {_MAX_IN} values")
            for v in value:
                _scalar(v, where)
        elif op == "$exists":
            if not isinstance(value, bool):
                raise InvalidInput(f"{where} takes true or false")
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidInput(f"{where} compares with a number or a string")
            _scalar(value, where)
        else:
            _scalar(value, where)


# -- the Python reference ------------------------------------------------------------------
def _lookup(document: object, path: tuple[str, ...]) -> tuple[bool, object]:
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return False, None
        document = document[part]
    return True, document


def json_kind(value: object) -> str:
    """The JSON kind of a value: null, boolean, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _equal(found: bool, value: object, target: Scalar) -> bool:
    return found and json_kind(value) == json_kind(target) and value == target


def _compare(found: bool, value: object, op: str, target: Scalar) -> bool:
    if not found or json_kind(value) != json_kind(target):
        return False
    a, b = value, target
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]  # type: ignore[operator]


def matches(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Whether ``metadata`` satisfies the (validated) filter: the reference semantics."""
    for key, condition in spec.items():
        if key == "$and":
            ok = all(matches(sub, metadata) for sub in condition)
        elif key == "$or":
            ok = any(matches(sub, metadata) for sub in condition)
        elif key == "$not":
            ok = not matches(condition, metadata)
        else:
            found, value = _lookup(metadata, _path(key))
            ops = condition if isinstance(condition, dict) else {"$eq": condition}
            ok = all(_match_op(found, value, op, target) for op, target in ops.items())
        if not ok:
            return False
    return True


def _match_op(found: bool, value: object, op: str, target: Any) -> bool:
    if op == "$eq":
        return _equal(found, value, target)
    if op == "$ne":
        return not _equal(found, value, target)
    if op == "$in":
        return any(_equal(found, value, t) for t in target)
    if op == "$nin":
        return not any(_equal(found, value, t) for t in target)
    if op == "$exists":
        return found is target
    if op == "$contains":
        if isinstance(value, list):
            return any(_equal(True, v, target) for v in value)
        return isinstance(value, str) and isinstance(target, str) and target in value
    return _compare(found, value, op, target)


# -- SQL -----------------------------------------------------------------------------------
class _SQLite:
    """JSON1 functions; paths are bound as '$."a"."b"' strings."""

    def __init__(self, column: Any) -> None:
        self.column = column

    def _p(self, path: tuple[str, ...]) -> Any:
        return literal("$" + "".join(f'."{p}"' for p in path))

    def kind(self, path: tuple[str, ...]) -> Any:
        raw = func.json_type(self.column, self._p(path))
        return case(
            (raw.in_(["integer", "real"]), "number"),
            (raw == "text", "string"),
            (raw.in_(["true", "false"]), "boolean"),
            else_=raw,
        )

    def exists(self, path: tuple[str, ...]) -> Any:
        return func.json_type(self.column, self._p(path)).is_not(None)

    def equal(self, path: tuple[str, ...], target: Scalar) -> Any:
        raw = func.json_type(self.column, self._p(path))
        if target is None:
            return raw == "null"
        if isinstance(target, bool):
            return raw == ("true" if target else "false")
        value = func.json_extract(self.column, self._p(path))
        if isinstance(target, str):
            return and_(raw == "text", value == literal(target))
        return and_(raw.in_(["integer", "real"]), value == literal(target))

    def one_of(self, path: tuple[str, ...], targets: list[Scalar]) -> Any:
        # One IN list per JSON type (a number never equals a string), not an OR per value.
        raw = func.json_type(self.column, self._p(path))
        value = func.json_extract(self.column, self._p(path))
        strings = [t for t in targets if isinstance(t, str)]
        numbers = [t for t in targets if isinstance(t, int | float) and not isinstance(t, bool)]
        clauses = [
            self.equal(path, special)
            for special in (None, True, False)
            if any(t is special for t in targets)
        ]
        if strings:
            clauses.append(and_(raw == "text", value.in_(strings)))
        if numbers:
            clauses.append(and_(raw.in_(["integer", "real"]), value.in_(numbers)))
        return or_(false(), *clauses)

    def compare(self, path: tuple[str, ...], op: str, target: str | float) -> Any:
        value = func.json_extract(self.column, self._p(path))
        wanted = "string" if isinstance(target, str) else "number"
        return and_(self.kind(path) == wanted, _op(value, op, literal(target)))

    def contains(self, path: tuple[str, ...], target: Scalar) -> Any:
        each = func.json_each(self.column, self._p(path)).table_valued("value", "type")
        if target is None:
            element = each.c.type == "null"
        elif isinstance(target, bool):
            element = each.c.type == ("true" if target else "false")
        elif isinstance(target, str):
            element = and_(each.c.type == "text", each.c.value == literal(target))
        else:
            element = and_(each.c.type.in_(["integer", "real"]), each.c.value == literal(target))
        in_array = and_(
            func.json_type(self.column, self._p(path)) == "array",
            select(1).select_from(each).where(element).exists(),
        )
        if not isinstance(target, str):
            return in_array
        text = func.json_extract(self.column, self._p(path))
        in_text = and_(self.kind(path) == "string", func.instr(text, literal(target)) > 0)
        return or_(in_array, in_text)


class _Postgres:
    """JSONB operators; path elements are bound text parameters."""

    def __init__(self, column: Any) -> None:
        self.column = column

    def _value(self, path: tuple[str, ...]) -> Any:
        return func.jsonb_extract_path(self.column, *[literal(p) for p in path], type_=JSONB)

    def _text(self, path: tuple[str, ...]) -> Any:
        return func.jsonb_extract_path_text(self.column, *[literal(p) for p in path])

    def kind(self, path: tuple[str, ...]) -> Any:
        return func.jsonb_typeof(self._value(path))

    def exists(self, path: tuple[str, ...]) -> Any:
        return self._value(path).is_not(None)

    def equal(self, path: tuple[str, ...], target: Scalar) -> Any:
        return self._value(path) == literal(target, JSONB)

    def one_of(self, path: tuple[str, ...], targets: list[Scalar]) -> Any:
        # jsonb equality already keeps JSON types apart: one IN list of jsonb values.
        return self._value(path).in_([literal(t, JSONB) for t in targets])

    def compare(self, path: tuple[str, ...], op: str, target: str | float) -> Any:
        if isinstance(target, str):
            guarded = case((self.kind(path) == "string", self._text(path).collate("C")), else_=None)
            return _op(guarded, op, literal(target).collate("C"))
        guarded = case((self.kind(path) == "number", self._value(path)), else_=None)
        return _op(guarded, op, literal(target, JSONB))

    def contains(self, path: tuple[str, ...], target: Scalar) -> Any:
        in_array = and_(
            self.kind(path) == "array", self._value(path).op("@>")(literal([target], JSONB))
        )
        if not isinstance(target, str):
            return in_array
        in_text = and_(self.kind(path) == "string", func.strpos(self._text(path), target) > 0)
        return or_(in_array, in_text)


def _op(left: Any, op: str, right: Any) -> Any:
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[
        op
    ]


def _strict(expr: Any) -> Any:
    # Always TRUE or FALSE, never NULL, so NOT and OR behave like the Python reference.
    return case((expr, true()), else_=false())


def compile_filter(spec: dict[str, Any], column: Any, dialect: str) -> ColumnElement[bool]:
    """Compile a filter on the JSON ``column`` for ``dialect`` ("sqlite" or "postgresql").

    Raises:
        InvalidInput: the filter does not validate.
    """
    validate_filter(spec)
    backend = _Postgres(column) if dialect == "postgresql" else _SQLite(column)
    compiled: ColumnElement[bool] = _compile(spec, backend)
    return compiled


def _balanced(join: Any, clauses: list[Any]) -> Any:
    # A long chain "a OR b OR c ..." parses into a tree as deep as it is long, and SQLite
    # refuses trees deeper than 1000: join in a balanced tree instead, log2(n) deep. Each
    # level is wrapped in CASE, so SQLAlchemy does not flatten it back into one chain.
    if len(clauses) <= _FANOUT:
        return _strict(join(*clauses))
    middle = len(clauses) // 2
    return _strict(join(_balanced(join, clauses[:middle]), _balanced(join, clauses[middle:])))


def _compile(spec: dict[str, Any], backend: _SQLite | _Postgres) -> Any:
    clauses = []
    for key, condition in spec.items():
        if key == "$and":
            clauses.append(_balanced(and_, [_compile(sub, backend) for sub in condition]))
        elif key == "$or":
            clauses.append(_balanced(or_, [_compile(sub, backend) for sub in condition]))
        elif key == "$not":
            clauses.append(not_(_compile(condition, backend)))
        else:
            path = _path(key)
            ops = condition if isinstance(condition, dict) else {"$eq": condition}
            clauses.extend(_compile_op(backend, path, op, target) for op, target in ops.items())
    return _balanced(and_, [true(), *clauses])


def _compile_op(backend: _SQLite | _Postgres, path: tuple[str, ...], op: str, target: Any) -> Any:
    if op == "$eq":
        return _strict(backend.equal(path, target))
    if op == "$ne":
        return not_(_strict(backend.equal(path, target)))
    if op in ("$in", "$nin"):
        any_equal = _strict(backend.one_of(path, target)) if target else false()
        return any_equal if op == "$in" else not_(any_equal)
    if op == "$exists":
        return backend.exists(path) if target else not_(backend.exists(path))
    if op == "$contains":
        return _strict(backend.contains(path, target))
    return _strict(backend.compare(path, op, target))
