"""The filter DSL gives the Python reference's answers on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Engine, Integer, MetaData, Table, insert, select
from sqlalchemy.dialects.postgresql import JSONB

from latentspace.errors import InvalidInput
from latentspace.store import payload as payload_module
from latentspace.store.filters import compile_filter, matches, validate_filter
from latentspace.store.payload import PayloadIndex

KEYS = ["a", "b", "c.d", "tags"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, 2.5]),
    st.sampled_from(["", "x", "xy", "Y", "é", "2"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))


def documents() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "a": VALUES,
            "b": VALUES,
            "c": st.one_of(st.fixed_dictionaries({}, optional={"d": VALUES}), SCALARS),
            "tags": st.lists(st.sampled_from(["x", "y", 1, True]), max_size=3),
        },
    )


def conditions() -> st.SearchStrategy[object]:
    comparable = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, "", "x", "xz", "Y"]))
    op = st.one_of(
        st.builds(lambda v: {"$eq": v}, SCALARS),
        st.builds(lambda v: {"$ne": v}, SCALARS),
        st.builds(lambda o, v: {o: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable),
        st.builds(lambda v: {"$in": v}, st.lists(SCALARS, max_size=3)),
        st.builds(lambda v: {"$nin": v}, st.lists(SCALARS, max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda v: {"$contains": v}, SCALARS),
    )
    return st.one_of(SCALARS, op)


def filters() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.dictionaries(st.sampled_from(KEYS), conditions(), min_size=1, max_size=2)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"$not": x}, inner),
        ),
        max_leaves=6,
    )


def make_table(engine: Engine) -> Table:
    metadata = MetaData()
    table = Table(
        "docs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("meta", JSON().with_variant(JSONB(), "postgresql")),
    )
    metadata.create_all(engine)
    return table


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(documents(), min_size=1, max_size=12),
    spec=st.lists(filters(), min_size=5, max_size=5),
)
def test_sql_agrees_with_the_reference(
    engine: Engine, docs: list[dict[str, Any]], spec: list[dict[str, Any]]
) -> None:
    table = make_table(engine)
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(insert(table), [{"id": i, "meta": d} for i, d in enumerate(docs)])
        for f in spec:
            query = select(table.c.id).where(compile_filter(f, table.c.meta, engine.dialect.name))
            got = sorted(conn.execute(query).scalars())
            want = [i for i, d in enumerate(docs) if matches(f, d)]
            assert got == want, (f, docs)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(documents(), min_size=1, max_size=12),
    spec=st.lists(filters(), min_size=5, max_size=5),
    rewritten=st.lists(st.integers(0, 11), max_size=4),
    layout=st.sampled_from(["recent", "columns", "compacting"]),
)
def test_the_payload_index_agrees_with_sql(
    engine: Engine,
    docs: list[dict[str, Any]],
    spec: list[dict[str, Any]],
    rewritten: list[int],
    layout: str,
) -> None:
    # The in-memory evaluation against SQL on the same rows, after some items were indexed
    # twice (an update) and one removed and put back (a delete, then a restore); the items
    # held as recent writes, as sorted columns with recent rewrites over stale rows, or
    # compacted from both after every write.
    table = make_table(engine)
    first = [(i, {"stale": i, **d}) for i, d in enumerate(docs)]
    index = PayloadIndex.of(first) if layout != "recent" else PayloadIndex()
    compact_min = payload_module._COMPACT_MIN
    payload_module._COMPACT_MIN = 0 if layout == "compacting" else compact_min
    try:
        if layout == "recent":
            index.upsert(first)
        index.upsert((i, d) for i, d in enumerate(docs))
        index.upsert((i % len(docs), docs[i % len(docs)]) for i in rewritten)
        index.remove([0])
        index.upsert([(0, docs[0])])
    finally:
        payload_module._COMPACT_MIN = compact_min
    assert len(index) == len(docs)
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(insert(table), [{"id": i, "meta": d} for i, d in enumerate(docs)])
        for f in spec:
            query = select(table.c.id).where(compile_filter(f, table.c.meta, engine.dialect.name))
            want = sorted(conn.execute(query).scalars())
            assert index.evaluate(f).tolist() == want, (f, docs)


def test_dates_as_iso_8601_strings_range_alike_in_sql_and_in_memory(engine: Engine) -> None:
    # ISO 8601 timestamps of one form order by code point as they do in time, on both
    # databases and in the payload index; a number or a missing field is never in range.
    docs = [
        {"when": "2026-01-31T23:59:59Z"},
        {"when": "2026-02-01T00:00:00Z"},
        {"when": "2026-12-07T06:00:00Z"},
        {"when": 20260201},
        {"other": "2026-02-01"},
        {"when": None},
    ]
    table = make_table(engine)
    index = PayloadIndex()
    index.upsert(enumerate(docs))
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "meta": d} for i, d in enumerate(docs)])
        for spec, want in (
            ({"when": {"$gte": "2026-02-01"}}, [1, 2]),
            ({"when": {"$lt": "2026-02-01T00:00:00Z"}}, [0]),
            ({"when": {"$gt": "2026-01", "$lte": "2026-02-01T00:00:00Z"}}, [0, 1]),
            ({"when": {"$exists": True}}, [0, 1, 2, 3, 5]),
            ({"when": None}, [5]),
        ):
            where = compile_filter(spec, table.c.meta, engine.dialect.name)
            assert sorted(conn.execute(select(table.c.id).where(where)).scalars()) == want, spec
            assert index.evaluate(spec).tolist() == want, spec
            assert [i for i, d in enumerate(docs) if matches(spec, d)] == want, spec


def test_the_payload_index_forgets_what_it_removed() -> None:
    index = PayloadIndex()
    index.upsert([(1, {"a": 1, "t": ["x"]}), (2, {"a": 2.0, "s": "xyz", "o": {"p": True}})])
    assert index.evaluate({"a": {"$gte": 1}}).tolist() == [1, 2]
    assert index.evaluate({"a": 1.0}).tolist() == [1]  # 1 and 1.0 are one JSON number
    assert index.evaluate({"o.p": True}).tolist() == [2]
    assert index.evaluate({"o": {"$exists": True}}).tolist() == [2]
    index.remove([2])
    assert index.evaluate({"a": {"$gte": 1}}).tolist() == [1]
    assert index.evaluate({"s": {"$contains": "y"}}).tolist() == []
    assert index.evaluate({"o.p": {"$ne": True}}).tolist() == [1]
    index.upsert([(1, {"a": 3})])  # re-indexed: its old values are gone
    assert index.evaluate({"t": {"$contains": "x"}}).tolist() == []
    assert index.evaluate({"a": {"$lt": 2}}).tolist() == []
    assert index.paths == 1
    assert len(index) == 1


def test_examples(engine: Engine) -> None:
    table = make_table(engine)
    docs = [
        {"colour": "red", "size": 3, "tags": ["cat", "pet"], "meta": {"rating": 4.5}},
        {"colour": "blue", "size": 10, "tags": ["dog"], "meta": {"rating": 2}},
        {"colour": "red", "size": "3", "note": "a red cat"},
    ]
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "meta": d} for i, d in enumerate(docs)])

        def ids(f: dict[str, Any]) -> list[int]:
            where = compile_filter(f, table.c.meta, engine.dialect.name)
            return sorted(conn.execute(select(table.c.id).where(where)).scalars())

        assert ids({"colour": "red"}) == [0, 2]
        assert ids({"size": 3}) == [0]  # the string "3" is not the number 3
        assert ids({"size": {"$gte": 3, "$lt": 10}}) == [0]
        assert ids({"meta.rating": {"$gt": 3}}) == [0]
        assert ids({"tags": {"$contains": "dog"}}) == [1]
        assert ids({"note": {"$contains": "red"}}) == [2]
        assert ids({"$or": [{"colour": "blue"}, {"note": {"$exists": True}}]}) == [1, 2]
        assert ids({"$not": {"colour": "red"}}) == [1]
        assert ids({"colour": {"$nin": ["red", "green"]}}) == [1]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"a'; DROP TABLE items; --": 1}, "invalid filter key"),
        ({"a) OR 1=1 --": 1}, "invalid filter key"),
        ({"a": {"$where": "1"}}, "unknown operator"),
        ({"$expr": {}}, "unknown filter operator"),
        ({"a": {"$in": "x"}}, "takes a list"),
        ({"a": {"$gt": True}}, "compares with"),
        ({"a": {"$gt": [1]}}, "compares with"),
        ({"a": {"$eq": {"b": 1}}}, "expected a string"),
        ({"a": float("nan")}, "finite"),
        ({"a": {"$exists": 1}}, "true or false"),
        ({"$and": []}, "non-empty list"),
        ({"a": {}}, "empty condition"),
        ({"a." * 9 + "b": 1}, "invalid filter key"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_filters_are_refused(spec: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        validate_filter(spec)


def test_values_are_bound_never_inlined(engine: Engine) -> None:
    table = make_table(engine)
    hostile = "x'); DROP TABLE docs; --"
    where = compile_filter({"a": hostile}, table.c.meta, engine.dialect.name)
    sql = str(where.compile(dialect=engine.dialect))
    assert "DROP" not in sql
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "meta": {"a": hostile}}])
        assert list(conn.execute(select(table.c.id).where(where)).scalars()) == [1]


def test_columns_answer_equalities_and_ranges_over_many_distinct_values() -> None:
    # A value per item (a timestamp, a large id) in random order: the columns find each
    # by binary search, compare large integers exactly, and state their memory per path.
    rng = np.random.default_rng(3)
    order = rng.permutation(20_000)
    docs = [
        (
            int(i),
            {
                "ts": f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "big": 2**62 + int(i),
                "n": {"v": int(i) % 7},
            },
        )
        for i in order
    ]
    index = PayloadIndex.of(docs)
    assert index.evaluate({"ts": "2026-01-01T01:00:00Z"}).tolist() == [3600]
    assert index.evaluate({"ts": {"$lt": "2026-01-01T00:00:10Z"}}).tolist() == list(range(10))
    assert index.evaluate({"big": {"$gt": 2**62 + 19_997}}).tolist() == [19_998, 19_999]
    assert index.evaluate({"big": 2**62 + 5}).tolist() == [5]
    assert index.evaluate({"n.v": {"$in": [6]}}).shape[0] == len(range(6, 20_000, 7))
    index.upsert([(5, {"big": 1})])  # rewritten: its column rows are stale now
    assert index.evaluate({"big": 2**62 + 5}).tolist() == []
    assert index.evaluate({"ts": {"$exists": False}}).tolist() == [5]
    memory = index.memory()
    assert set(memory) == {"ts", "big", "n", "n.v"}
    assert memory["ts"] > 20_000 * 16  # an id, a pointer and a string per item
