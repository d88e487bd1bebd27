"""Hybrid search over HTTP: keyword terms, each fusion method as its legs say, filters,
pages and min_score on the fused list, explain, writes seen at once, and bad input.

The vector leg uses tiny-shapes' text tower (plumbing: exact agreement with the legs asked
alone); the claim that hybrid beats dense is made with the real all-MiniLM-L6-v2 in
tests/api/test_hybrid_minilm.py and bench/bench_rag.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, bm25_reference, make_settings

from latentspace.api import create_app

TEXTS = [
    "The sort() method sorts the list in place, using only < comparisons between items.",
    "sorted() returns a new sorted list from the items in iterable.",
    "A list comprehension consists of brackets containing an expression and a for clause.",
    "Dictionaries are sometimes found in other languages as associative memories.",
    "The key argument specifies a function used to extract a comparison key from each item.",
    "Sorting is guaranteed to be stable: sorts keep the original order of equal elements.",
    "a red circle",
    "a blue square",
    "a green triangle on the left",
    "Tuples are immutable sequences, typically used to store heterogeneous data.",
    "The reverse parameter sorts in descending order when it is true.",
    "Sets are unordered collections with no duplicate elements.",
]
DOCS = {f"t{i}": t for i, t in enumerate(TEXTS)}


def _create(client: TestClient, name: str = "docs", **extra: object) -> None:
    r = client.post("/v1/collections", json={"name": name, "model": "tiny-shapes", **extra})
    assert r.status_code == 201, r.text
    items = [{"id": i, "text": t, "metadata": {"n": n}} for n, (i, t) in enumerate(DOCS.items())]
    r = client.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("hybrid")))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        _create(c)
        yield c


def search(client: TestClient, body: dict, name: str = "docs") -> list[dict]:
    r = client.post(f"/v1/collections/{name}/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def hybrid(text: str, words: str, weight: float | None = None) -> dict:
    term: dict = {"keyword": words} if weight is None else {"keyword": words, "weight": weight}
    return {"terms": [{"text": text}, term]}


def test_keyword_search_is_bm25_on_either_database(db_client: TestClient) -> None:
    _create(db_client)
    for words in ("sorted list", "sorts order", "duplicate elements sets"):
        hits = search(db_client, {"query": {"keyword": words}, "k": 20})
        expected = bm25_reference({int(i[1:]): t for i, t in DOCS.items()}, words)
        assert {int(h["id"][1:]): h["score"] for h in hits} == pytest.approx(expected, rel=1e-5)
        ranked = sorted(expected, key=lambda i: (-expected[i], i))
        assert [h["id"] for h in hits] == [f"t{i}" for i in ranked]


@pytest.mark.parametrize("method", ["rrf", "weighted", "relative_score"])
def test_fused_order_is_the_fusion_of_the_legs_asked_alone(client: TestClient, method: str) -> None:
    text, words, k = "sorting a list", "sorted list order", 6
    vector = search(client, {"query": {"text": text}, "k": 100})  # the fusion depth
    keyword = search(client, {"query": {"keyword": words}, "k": 100})
    body = {"query": hybrid(text, words, 0.5), "k": k, "explain": True}
    fused = search(client, body | {"fusion": {"method": method, "k": 5}})
    # The same fusion, written out here from the two single-leg answers.
    legs = {"vector": (vector, 1.0), "keyword": (keyword, 0.5)}
    total: dict[str, float] = {}
    for hits, weight in legs.values():
        w = 1.0 if method == "rrf" else weight
        if method == "relative_score":
            low, high = min(h["score"] for h in hits), max(h["score"] for h in hits)
            for h in hits:
                total[h["id"]] = total.get(h["id"], 0) + w * (h["score"] - low) / (high - low)
        else:
            for rank, h in enumerate(hits, start=1):
                total[h["id"]] = total.get(h["id"], 0) + w / (5 + rank)
    best = {"rrf": 2 / 6, "weighted": 1.5 / 6, "relative_score": 1.5}[method]
    expected = sorted(total, key=lambda i: (-total[i], int(i[1:])))[:k]
    assert [h["id"] for h in fused] == expected
    assert [h["score"] for h in fused] == pytest.approx([total[i] / best for i in expected])
    for h in fused:
        for leg, (hits, _) in legs.items():
            place = next((r for r, x in enumerate(hits, start=1) if x["id"] == h["id"]), None)
            if place is None:
                assert leg not in h["legs"]
            else:
                assert h["legs"][leg]["rank"] == place
                assert h["legs"][leg]["score"] == pytest.approx(hits[place - 1]["score"])


def test_the_default_fusion_is_relative_score_with_the_measured_weight(
    client: TestClient,
) -> None:
    body = {"query": hybrid("sorting a list", "sorted list order"), "k": 8}
    default = search(client, body)
    spelled = search(
        client,
        {"query": hybrid("sorting a list", "sorted list order", 1.0), "k": 8}
        | {"fusion": {"method": "relative_score", "depth": 100}},
    )
    assert default == spelled
    earlier = search(
        client,
        {"query": hybrid("sorting a list", "sorted list order", 0.5), "k": 8}
        | {"fusion": {"method": "weighted", "k": 2, "depth": 100}},
    )
    assert [h["score"] for h in default] != [h["score"] for h in earlier]  # it did change


def test_pages_filters_and_min_score_apply_to_the_fused_list(client: TestClient) -> None:
    query = hybrid("a list of items", "list items sorted", 1.0)
    whole = search(client, {"query": query, "k": 9})
    pages = [search(client, {"query": query, "k": 3, "offset": o}) for o in (0, 3, 6)]
    assert [h["id"] for p in pages for h in p] == [h["id"] for h in whole]
    even = {"n": {"$in": [0, 2, 4, 6, 8, 10]}}
    filtered = search(client, {"query": query, "k": 12, "filter": even, "include": ["metadata"]})
    assert filtered
    assert all(h["metadata"]["n"] % 2 == 0 for h in filtered)
    kept = [h for h in search(client, {"query": query, "k": 12}) if int(h["id"][1:]) % 2 == 0]
    assert [h["id"] for h in filtered] == [h["id"] for h in kept]  # filtered inside the legs
    cut = whole[4]["score"]
    bounded = search(client, {"query": query, "k": 12, "min_score": cut})
    assert bounded
    assert all(cut <= h["score"] <= 1.0 for h in bounded)
    assert [h["id"] for h in bounded] == [h["id"] for h in whole if h["score"] >= cut]


def test_writes_are_searched_at_once(client: TestClient) -> None:
    url = "/v1/collections/docs/items"
    r = client.post(url, json={"items": [{"id": "z", "text": "zebras graze at dawn"}]})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in search(client, {"query": {"keyword": "zebra"}})] == ["z"]
    r = client.post(url, json={"items": [{"id": "z", "text": "giraffes browse at dusk"}]})
    assert search(client, {"query": {"keyword": "zebra"}}) == []
    assert [h["id"] for h in search(client, {"query": {"keyword": "giraffe"}})] == ["z"]
    assert client.delete(f"{url}/z").status_code == 204
    assert search(client, {"query": {"keyword": "giraffe"}}) == []


def test_analysis_is_per_collection_and_reported(client: TestClient) -> None:
    _create(client, "plain", keyword={"stemmer": None, "stopwords": ["list"]})
    info = client.get("/v1/collections/plain").json()["keyword"]
    assert info == {"stemmer": None, "stopwords": ["list"], "k1": 1.2, "b": 0.75}
    assert client.get("/v1/collections/docs").json()["keyword"]["stemmer"] == "english"
    assert search(client, {"query": {"keyword": "list"}}, "plain") == []
    assert {h["id"] for h in search(client, {"query": {"keyword": "sorting"}}, "plain")} == {"t5"}
    assert len(search(client, {"query": {"keyword": "sorting"}, "k": 20})) == 4  # stemmed


def test_rerank_takes_the_keyword_when_there_is_no_text(client: TestClient) -> None:
    body = {"query": {"keyword": "sorted list"}, "rerank": {"model": "tiny-shapes"}}
    r = client.post("/v1/collections/docs/search", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": {"keyword": "a", "weight": -1}}, 422, "weight"),
        ({"query": {"keyword": "a", "weight": 0}}, 422, "weight"),
        ({"query": {"keyword": "a"}, "fusion": {"method": "rank"}}, 422, "method"),
        ({"query": {"keyword": "a"}, "fusion": {"k": 0}}, 422, "k"),
        ({"query": {"keyword": "a"}, "fusion": {"depth": 10_001}}, 422, "depth"),
        ({"query": {"keyword": "a", "text": "b"}}, 422, "exactly one"),
        ({"query": {"keyword": "x" * 100_000}}, 413, "keyword"),
    ],
)
def test_bad_hybrid_queries_get_a_clear_4xx(
    client: TestClient, body: dict, status: int, words: str
) -> None:
    r = client.post("/v1/collections/docs/search", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("directions", {"name": "d", "positive": [{"keyword": "a"}], "negative": [{"text": "b"}]}),
        ("path", {"from": {"keyword": "a"}, "to": {"text": "b"}}),
    ],
)
def test_a_keyword_term_outside_search_is_refused(
    client: TestClient, path: str, body: dict
) -> None:
    r = client.post(f"/v1/collections/docs/{path}", json=body)
    assert r.status_code == 422, r.text
    assert "keyword term" in r.text


@pytest.mark.parametrize(
    "keyword", [{"stemmer": "klingon"}, {"stopwords": "xx"}, {"k1": 0}, {"b": 1.5}, {"x": 1}]
)
def test_bad_analysis_settings_get_a_422(client: TestClient, keyword: dict) -> None:
    r = client.post(
        "/v1/collections", json={"name": "bad", "model": "tiny-shapes", "keyword": keyword}
    )
    assert r.status_code == 422, r.text
    assert client.get("/v1/collections/bad").status_code == 404
