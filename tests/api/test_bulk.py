"""Many items by ids or a filter (``…/items:get``, ``:delete``, ``:scroll``, ``:count``), and
items that bring their own vector with the text it was embedded from, on both databases."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import assert_problem, vectors

BASE = "/v1/collections/raw"


@pytest.fixture
def raw(db_client: TestClient) -> TestClient:
    """A 16-d raw collection holding v0..v29 (metadata n and parity), texts for the evens."""
    r = db_client.post("/v1/collections", json={"name": "raw", "dim": 16})
    assert r.status_code == 201, r.text
    x = vectors(30)
    items = [
        {
            "id": f"v{i}",
            "vector": x[i].tolist(),
            "metadata": {"n": i, "even": i % 2 == 0},
            **({"text": f"passage number {i} about sailing"} if i % 2 == 0 else {}),
        }
        for i in range(30)
    ]
    r = db_client.post(f"{BASE}/items", json={"items": items})
    assert r.status_code == 200, r.text
    return db_client


def test_get_answers_the_stored_items_in_the_order_asked_and_names_the_missing(
    raw: TestClient,
) -> None:
    r = raw.post(f"{BASE}/items:get", json={"ids": ["v7", "nope", "v2", "v7"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == ["v7", "v2"]
    assert body["missing"] == ["nope"]
    assert body["items"][1]["text"] == "passage number 2 about sailing"
    assert body["items"][0]["vector"] is None
    r = raw.post(f"{BASE}/items:get", json={"ids": ["v3"], "include_vector": True})
    got = np.asarray(r.json()["items"][0]["vector"])
    x = vectors(30)[3]
    np.testing.assert_allclose(got, x / np.linalg.norm(x), atol=1e-6)


def test_delete_by_ids_is_idempotent_and_reports_the_missing(raw: TestClient) -> None:
    r = raw.post(f"{BASE}/items:delete", json={"ids": ["v1", "v2", "ghost"]})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == 2
    assert r.json()["missing"] == ["ghost"]
    assert r.json()["seq"] > 0
    again = raw.post(f"{BASE}/items:delete", json={"ids": ["v1", "v2"]})
    assert again.json() == {**again.json(), "deleted": 0, "missing": ["v1", "v2"]}
    assert raw.get(f"{BASE}/items/v1").status_code == 404
    hits = raw.post(f"{BASE}/search", json={"query": {"item": "v0"}, "k": 30}).json()
    assert {"v1", "v2"}.isdisjoint(h["id"] for h in hits["results"])


def test_delete_by_filter_removes_exactly_the_matches(raw: TestClient) -> None:
    r = raw.post(f"{BASE}/items:delete", json={"filter": {"n": {"$gte": 20}}})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == 10
    assert raw.get(BASE).json()["count"] == 20
    hits = raw.post(f"{BASE}/search", json={"query": {"item": "v0"}, "k": 30}).json()
    assert sorted(int(h["id"][1:]) for h in hits["results"]) == list(range(1, 20))
    assert raw.post(f"{BASE}/items:delete", json={"filter": {"n": 99}}).json()["deleted"] == 0


def test_scroll_pages_through_the_matches_in_id_order(raw: TestClient) -> None:
    seen, after, pages = [], 0, 0
    while after is not None:
        r = raw.post(
            f"{BASE}/items:scroll",
            json={"filter": {"even": True}, "limit": 4, "after": after, "include_vector": True},
        )
        assert r.status_code == 200, r.text
        seen += [i["id"] for i in r.json()["items"]]
        assert all(len(i["vector"]) == 16 for i in r.json()["items"])
        after, pages = r.json()["next"], pages + 1
    assert seen == [f"v{i}" for i in range(0, 30, 2)]
    assert pages == 4
    everything = raw.post(f"{BASE}/items:scroll", json={"limit": 1000}).json()
    assert len(everything["items"]) == 30
    assert everything["next"] is None


def test_count_with_and_without_a_filter(raw: TestClient) -> None:
    assert raw.post(f"{BASE}/items:count", json={}).json() == {"count": 30}
    r = raw.post(f"{BASE}/items:count", json={"filter": {"n": {"$lt": 5}}})
    assert r.json() == {"count": 5}


def test_a_vector_with_its_text_is_stored_as_given_and_found_by_keyword(
    raw: TestClient,
) -> None:
    hits = raw.post(f"{BASE}/search", json={"query": {"keyword": "sailing"}, "k": 50}).json()
    assert sorted(int(h["id"][1:]) for h in hits["results"]) == list(range(0, 30, 2))
    # a new text on the same vector is a change; the same pair again is not
    item = {"id": "v4", "vector": vectors(30)[4].tolist(), "text": "rowing instead"}
    r = raw.post(f"{BASE}/items", json={"items": [item]})
    assert r.json()["items"][0]["status"] == "updated"
    r = raw.post(f"{BASE}/items", json={"items": [item]})
    assert r.json()["items"][0]["status"] == "unchanged"
    assert raw.get(f"{BASE}/items/v4").json()["text"] == "rowing instead"


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "needle"),
    [
        ("delete", {}, 422, "validation-error", "exactly one of ids or filter"),
        ("delete", {"ids": ["a"], "filter": {"n": 1}}, 422, "validation-error", "exactly one"),
        ("delete", {"ids": []}, 422, "validation-error", "ids"),
        ("delete", {"filter": {"$where": 1}}, 422, "invalid-input", "$where"),
        ("get", {"ids": []}, 422, "validation-error", "ids"),
        ("get", {"ids": ["a\u0000b"]}, 422, "invalid-input", "item id"),
        ("get", {"ids": ["x"] * 2000}, 413, "limit-exceeded", "max_batch"),
        ("scroll", {"limit": 0}, 422, "validation-error", "limit"),
        ("scroll", {"filter": {"n": {"$bad": 1}}}, 422, "invalid-input", "$bad"),
        ("count", {"filter": "n"}, 422, "validation-error", "filter"),
    ],
)
def test_bad_bulk_requests_are_problems(
    raw: TestClient, path: str, body: dict[str, object], status: int, kind: str, needle: str
) -> None:
    with_count = raw.get(BASE).json()["count"]
    r = raw.post(f"{BASE}/items:{path}", json=body)
    assert_problem(r, status, kind, needle)
    assert raw.get(BASE).json()["count"] == with_count


def test_bulk_routes_of_a_missing_collection_are_404(db_client: TestClient) -> None:
    for path, body in [("get", {"ids": ["a"]}), ("delete", {"ids": ["a"]}), ("count", {})]:
        assert_problem(
            db_client.post(f"/v1/collections/nope/items:{path}", json=body), 404, "not-found"
        )


def test_an_image_with_text_is_still_refused(raw: TestClient) -> None:
    r = raw.post(f"{BASE}/items", json={"items": [{"id": "x", "text": "a", "image": "AAAA"}]})
    assert_problem(r, 422, "validation-error", "a vector with its text")


def test_an_item_named_like_a_bulk_method_stays_its_own(raw: TestClient) -> None:
    item = {"id": "get", "vector": vectors(31)[30].tolist(), "metadata": {"n": -1}}
    assert raw.post(f"{BASE}/items", json={"items": [item]}).status_code == 200
    assert raw.get(f"{BASE}/items/get").json()["metadata"] == {"n": -1}
    assert raw.post(f"{BASE}/items:get", json={"ids": ["get"]}).json()["missing"] == []
    assert raw.options(f"{BASE}/items:get").headers["allow"] == "POST"
