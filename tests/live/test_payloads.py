"""The payload index answers filters from memory: every committed change (writes, patches,
deletes, other processes' writes) is in the next filter, and a search says how many items
matched."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import ADMIN_KEY, DIM, items, make_settings, vectors

from latentspace.api import create_app
from latentspace.service import Context, collections, lifecycle, replica
from latentspace.service import items as item_service
from latentspace.service import search as search_module
from latentspace.service.search import search_vector
from latentspace.settings import ClusterSettings, Settings
from latentspace.store import lookups


def sql_ids(space: Context, spec: dict[str, object]) -> list[int]:
    with space.sessions() as session:
        row = collections.get(space, "c")
        return sorted(lookups.filter_item_ids(session=session, collection=row, spec=spec).tolist())


def test_filters_follow_every_committed_change(space: Context) -> None:
    x = vectors(60, seed=3)
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(x))  # metadata {"n": i}
    row = collections.get(space, "c")
    small = {"n": {"$lt": 10}}
    assert space.live.payloads.matching(row, small).tolist() == sql_ids(space, small)
    item_service.update_metadata(space, "c", "v50", {"n": 1, "tag": "late"})
    item_service.delete(space, "c", ["v3"])
    item_service.write(space, "c", items(vectors(2, seed=9), start=60))  # v60, v61: n 60, 61
    for spec in (small, {"tag": "late"}, {"n": {"$gte": 60}}, {"tag": {"$exists": False}}):
        assert space.live.payloads.matching(row, spec).tolist() == sql_ids(space, spec), spec
    hits = search_vector(space, "c", x[50], k=3, filter={"tag": "late"})
    assert [h.id for h in hits] == ["v50"]


def test_another_processs_writes_reach_this_processs_filters(
    engine: Engine, tmp_path: Path, opened: list[Context]
) -> None:
    cluster = ClusterSettings(replica=True, poll_ms=3_600_000)
    url = engine.url.render_as_string(False)
    here = lifecycle.start(Settings(data_dir=tmp_path / "a", database_url=url, cluster=cluster))
    opened.append(here)
    there = lifecycle.start(Settings(data_dir=tmp_path / "b", database_url=url, cluster=cluster))
    opened.append(there)
    collections.create(here, "c", dim=DIM)
    item_service.write(here, "c", items(vectors(20, seed=4)))
    row = collections.get(here, "c")
    assert here.live.payloads.matching(row, {"n": 5}).size == 1  # built here
    assert search_vector(here, "c", vectors(1, seed=4)[0], k=1)  # and the index open here
    item_service.update_metadata(there, "c", "v5", {"n": 500})
    item_service.delete(there, "c", ["v6"])
    assert replica.Follower(here).poll() == 2  # the index replays them; the owner tells
    assert here.live.payloads.matching(row, {"n": 5}).size == 0
    assert here.live.payloads.matching(row, {"n": {"$gte": 6, "$lt": 8}}).size == 1  # v7
    assert here.live.payloads.matching(row, {"n": 500}).size == 1


def test_both_plans_agree_and_say_how_many_matched(
    space: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = vectors(300, seed=1)
    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(x))
    query = search_module.Query(
        terms=[search_module.QueryTerm(vector=x[200])],
        k=5,
        filter={"n": {"$lt": 50}},
        explain=True,
    )
    by_allow_list = search_module.search(space, "c", query)
    monkeypatch.setattr(search_module, "ALLOW_LIST_LIMIT", 10)
    monkeypatch.setattr(search_module, "ALLOW_LIST_SHARE", 0.0)
    by_member_check = search_module.search(space, "c", query)
    assert [h.id for h in by_allow_list.hits] == [h.id for h in by_member_check.hits]
    assert by_allow_list.matched == by_member_check.matched == 50
    assert (by_allow_list.strategy, by_member_check.strategy) == ("exact", "post-check")
    unfiltered = search_module.search(space, "c", search_module.Query(terms=query.terms, k=5))
    assert unfiltered.matched is None


def test_the_api_answers_matched(tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(make_settings(tmp_path)), headers=auth) as c:
        c.post("/v1/collections", json={"name": "c", "dim": 4})
        rows = [
            {"id": f"i{i}", "vector": [1.0, float(i), 0.0, 0.0], "metadata": {"even": i % 2 == 0}}
            for i in range(9)
        ]
        assert c.post("/v1/collections/c/items", json={"items": rows}).status_code == 200
        body = {"query": {"vector": [1.0, 0.0, 0.0, 0.0]}, "k": 3, "filter": {"even": True}}
        answer = c.post("/v1/collections/c/search", json=body).json()
        assert answer["matched"] == 5
        assert len(answer["results"]) == 3
        assert all(int(r["id"][1:]) % 2 == 0 for r in answer["results"])
        plain = {"query": {"vector": [1.0, 0.0, 0.0, 0.0]}, "k": 3}
        assert c.post("/v1/collections/c/search", json=plain).json().get("matched") is None
        assert answer.get("strategy") is None  # said under explain only
        explained = c.post("/v1/collections/c/search", json=body | {"explain": True}).json()
        assert explained["strategy"] == "exact"
        assert answer["results"][0]["id"] == "i0"
        stated = c.get("/v1/collections/c").json()["payload_index"]  # built by the filter
        assert stated["items"] == 9
        assert stated["paths"] == 1
        assert set(stated["memory_bytes"]) == {"even"}
        assert stated["total_bytes"] == stated["memory_bytes"]["even"] > 0


def test_a_filter_reads_no_sql_until_a_commit_is_heard(
    space: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    from latentspace.live import tailed

    monkeypatch.setattr(tailed, "RECHECK_SECONDS", 3600.0)  # no time-based re-read here

    collections.create(space, "c", dim=DIM)
    item_service.write(space, "c", items(vectors(30, seed=8)))
    row = collections.get(space, "c")
    assert space.live.payloads.matching(row, {"n": {"$lt": 3}}).size == 3
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(space.engine, "before_cursor_execute", record)
    try:
        assert space.live.payloads.matching(row, {"n": {"$lt": 5}}).size == 5
        assert space.live.payloads.matching(row, {"n": {"$lt": 3}}).size == 3
        assert seen == []  # nothing committed since: answered from memory alone
        item_service.update_metadata(space, "c", "v1", {"n": 99})
        seen.clear()
        assert space.live.payloads.matching(row, {"n": {"$lt": 3}}).size == 2  # heard it
        assert any("oplog" in s for s in seen)
    finally:
        event.remove(space.engine, "before_cursor_execute", record)
