"""The id grammar: every id that is accepted can be addressed by every route; the rest are
refused with a reason, and no URL trick reaches past an item to its collection."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from PIL import Image
from tests.fixtures import ADMIN_KEY, make_settings, serve

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
C = "/v1/collections/c"
GOOD = ["a b", "50%", "100%25", "naïve-ü", "x.y", "...", ".hidden", "#hash", "q?x=1", "😀", "a+b"]
BAD = {"a/b": "'/'", ".": "cannot be addressed", "..": "cannot be addressed", "t\tx": "control"}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    # A real server: Starlette's TestClient decodes a path twice ("%2525" → "%"), which
    # uvicorn does not, and the URLs under test are exactly such paths.
    with (
        serve(make_settings(tmp_path_factory.mktemp("ids"))) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as c,
    ):
        assert c.post("/v1/collections", json={"name": "c", "model": "tiny-shapes"}).is_success
        yield c


@pytest.mark.parametrize("item_id", GOOD)
def test_an_accepted_id_is_addressable_by_every_route(client: httpx.Client, item_id: str) -> None:
    r = client.post(
        f"{C}/images",
        files=[("files", ("x.png", png(), "image/png"))],
        data={"ids": json.dumps([item_id])},
    )
    assert r.status_code == 200, r.text
    path = f"{C}/items/{quote(item_id, safe='')}"
    assert client.get(path).json()["id"] == item_id
    assert client.patch(path, json={"metadata": {"k": 1}}).json()["metadata"]["k"] == 1
    image = client.get(f"{path}/image")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    hits = client.post(f"{C}/search", json={"query": {"item": item_id}, "k": 1})
    assert hits.status_code == 200, hits.text
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(("item_id", "needle"), BAD.items(), ids=list(BAD))
def test_an_unaddressable_id_is_refused(client: httpx.Client, item_id: str, needle: str) -> None:
    for r in (
        client.post(f"{C}/items", json={"items": [{"id": item_id, "text": "red"}]}),
        client.post(
            f"{C}/images",
            files=[("files", ("x.png", png(), "image/png"))],
            data={"ids": json.dumps([item_id])},
        ),
        client.post(f"{C}/documents", json={"documents": [{"id": item_id, "text": "red"}]}),
    ):
        assert r.status_code == 422, r.text
        assert needle in r.json()["detail"]
    assert client.get(C).json()["count"] == 0


def test_no_url_trick_reaches_the_collection(client: httpx.Client) -> None:
    assert client.post(f"{C}/items", json={"items": [{"id": "keep", "text": "red"}]}).is_success
    for path in (f"{C}/items/%2E%2E", f"{C}/items/%2e", f"{C}/", f"{C}/items/keep/"):
        r = client.request("DELETE", httpx.URL(client.base_url.join(path)), follow_redirects=True)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert client.get(f"{C}/items/keep").status_code == 200
    assert client.get(C).json()["count"] == 1
