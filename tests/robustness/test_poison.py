"""Input that would poison an item is refused at the door, and the collection stays whole.

Each case is raw JSON (so it can hold what a JSON encoder would not write: lone
surrogates, NaN, Infinity), sent to the route that stores or queries it; afterwards GET,
list, search and filtered search of the collection all still answer 200.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
C = "/v1/collections/t"
DEEP_33 = '{"a":' * 33 + "1" + "}" * 33
DEEP_32 = '{"a":' * 31 + "1" + "}" * 31  # 31 nested objects inside metadata: 32 levels


def item(metadata: str = "{}", text: str = '"a red circle"', id_: str = '"p"') -> str:
    return f'{{"items":[{{"id":{id_},"text":{text},"metadata":{metadata}}}]}}'


def search(filter_: str = "null", query: str = '{"text":"red"}') -> str:
    return f'{{"query":{query},"filter":{filter_}}}'


CASES: dict[str, tuple[str, str, str, int, str]] = {
    # name: (method, path, body, status, needle)
    "metadata-surrogate": ("POST", "/items", item('{"x":"\\udfff"}'), 422, "lone surrogate"),
    "metadata-key-surrogate": ("POST", "/items", item('{"\\udfff":1}'), 422, "lone surrogate"),
    "metadata-nan": ("POST", "/items", item('{"x":NaN}'), 422, "not a JSON number"),
    "metadata-infinity": ("POST", "/items", item('{"x":[1,-Infinity]}'), 422, "not a JSON"),
    "metadata-nul": ("POST", "/items", item('{"x":"a\\u0000b"}'), 422, "NUL"),
    "metadata-huge-int": ("POST", "/items", item('{"x":' + "9" * 30 + "}"), 422, "64-bit"),
    "metadata-deep": ("POST", "/items", item(DEEP_33), 413, "MAX_JSON_DEPTH"),
    "metadata-large": (
        "POST",
        "/items",
        item('{"x":"' + "y" * 70_000 + '"}'),
        413,
        "MAX_METADATA_BYTES",
    ),
    "text-surrogate": ("POST", "/items", item(text='"red \\ud800"'), 422, "lone surrogate"),
    "text-nul": ("POST", "/items", item(text='"red\\u0000"'), 422, "NUL"),
    "id-nul": ("POST", "/items", item(id_='"p\\u0000"'), 422, "NUL"),
    "patch-nan": ("PATCH", "/items/t0", '{"metadata":{"x":NaN}}', 422, "not a JSON number"),
    "patch-deep": ("PATCH", "/items/t0", '{"metadata":' + DEEP_33 + "}", 413, "MAX_JSON_DEPTH"),
    "filter-nan": ("POST", "/search", search('{"n":NaN}'), 422, "not a JSON number"),
    "filter-surrogate": ("POST", "/search", search('{"n":"\\udfff"}'), 422, "lone surrogate"),
    "filter-deep": ("POST", "/search", search(DEEP_33), 413, "MAX_JSON_DEPTH"),
    "query-text-surrogate": ("POST", "/search", search(query='{"text":"\\udfff"}'), 422, "lone"),
    "query-item-surrogate": ("POST", "/search", search(query='{"item":"\\udfff"}'), 422, "lone"),
    "document-text": (
        "POST",
        "/documents",
        '{"documents":[{"id":"d","text":"one \\udfff two"}]}',
        422,
        "lone surrogate",
    ),
    "document-metadata": (
        "POST",
        "/documents",
        '{"documents":[{"id":"d","text":"one two","metadata":{"x":NaN}}]}',
        422,
        "not a JSON number",
    ),
    "lookup": ("POST", "/items/lookup", '{"sha256":["\\udfff"]}', 422, "lone surrogate"),
    "duplicate-check": ("POST", "/duplicates/check", '{"text":"\\udfff"}', 422, "lone"),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("poison")))
    with TestClient(app, headers=HEADERS) as c:
        assert c.post("/v1/collections", json={"name": "t", "model": "tiny-shapes"}).is_success
        items = [
            {"id": f"t{i}", "text": t, "metadata": {"n": i}} for i, t in enumerate(["red", "blue"])
        ]
        assert c.post(f"{C}/items", json={"items": items}).status_code == 200
        yield c


def test_the_32_level_limit_itself_is_accepted(client: TestClient) -> None:
    r = client.post(f"{C}/items", content=item(DEEP_32, id_='"deep"'))
    assert r.status_code == 200, r.text
    assert client.get(f"{C}/items/deep").status_code == 200
    assert client.delete(f"{C}/items/deep").status_code == 204


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), CASES.values(), ids=CASES)
def test_poison_is_refused_and_the_collection_stays_whole(
    client: TestClient, method: str, path: str, body: str, status: int, needle: str
) -> None:
    r = client.request(method, f"{C}{path}", content=body.encode("utf-8", "surrogatepass"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"], r.json()["detail"]
    assert client.get(f"{C}").json()["count"] == 2
    assert client.get(f"{C}/items").status_code == 200
    assert client.get(f"{C}/items/t0").json()["metadata"] == {"n": 0}
    for query in ({"query": {"text": "red"}}, {"query": {"text": "red"}, "filter": {"n": 0}}):
        found = client.post(f"{C}/search", json=query)
        assert found.status_code == 200, found.text
    assert client.get(f"{C}/items/p").status_code == 404  # nothing was stored
