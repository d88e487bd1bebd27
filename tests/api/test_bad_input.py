"""Hostile and malformed input: every bad request is a clear 4xx problem and changes nothing.

Each test checks the status, the ``application/problem+json`` content type, the problem
``type``, a telling substring of ``detail``, and that the collection kept its count (and that
an item the request tried to create does not exist).
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.fixtures import ADMIN_KEY, assert_problem, b64, image_bytes, make_settings, unchanged

from latentspace.api import create_app
from latentspace.embedder.models.shapes import ShapeSample
from latentspace.settings import LimitSettings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"content-type": "application/json"}
COLL = "/v1/collections/shapes"
LIM = "/v1/collections/lim"
RED = {"text": "red"}


def cases(table: dict[str, tuple[Any, ...]]) -> list[Any]:
    """Parametrize rows by id; a MarkDecorator in a row becomes that row's mark."""
    out = []
    for name, row in table.items():
        marks = [v for v in row if isinstance(v, pytest.MarkDecorator)]
        values = [v for v in row if not isinstance(v, pytest.MarkDecorator)]
        out.append(pytest.param(*values, id=name, marks=marks))
    return out


def png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of ``width``×``height`` zeros: a few KB that inflate to width×height/8."""
    raw = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * height, 9)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + tag + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def upload(c: TestClient, base: str, route: str, item_id: str, data: bytes) -> httpx.Response:
    """Send one image as a base64 item (route "items") or a multipart file ("images")."""
    if route == "items":
        return c.post(f"{base}/items", json={"items": [{"id": item_id, "image": b64(data)}]})
    files = [("files", ("upload.bin", data, "application/octet-stream"))]
    return c.post(f"{base}/images", files=files, data={"ids": json.dumps([item_id])})


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, shapes: list[ShapeSample]
) -> Iterator[TestClient]:
    """A started app with collection "shapes" (tiny-shapes, 40 PNG items s0..s39)."""
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("bad"))), headers=AUTH) as c:
        r = c.post("/v1/collections", json={"name": "shapes", "model": "tiny-shapes"})
        assert r.status_code == 201, r.text
        items = [
            {"id": f"s{i}", "image": b64(image_bytes(s.image)), "metadata": {"colour": s.colour}}
            for i, s in enumerate(shapes[:40])
        ]
        assert c.post(f"{COLL}/items", json={"items": items}).status_code == 200
        yield c


@pytest.fixture(scope="module")
def bad_images(shapes: list[ShapeSample]) -> dict[str, bytes]:
    """Hostile image payloads by name."""
    jpeg = image_bytes(shapes[0].image, "JPEG")
    return {
        "bomb": png_bomb(20_000, 20_000),  # 400M pixels: over Pillow's own bomb guard
        "bomb-64mp": png_bomb(8_000, 8_000),  # under Pillow's guard, over our 40M limit
        "truncated-jpeg": jpeg[: len(jpeg) // 2],
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect/></svg>',
        "empty": b"",
        "random": random.Random(0).randbytes(2048),
    }


IMAGE_CASES = {
    "bomb": (413, "limit-exceeded", "pixels"),
    "bomb-64mp": (413, "limit-exceeded", "over the limit of 40000000"),
    "truncated-jpeg": (422, "invalid-input", "truncated"),
    "svg": (422, "invalid-input", "not a supported image"),
    "empty": (422, "invalid-input", "empty"),
    "random": (422, "invalid-input", "not a supported image"),
}


@pytest.mark.parametrize(
    ("route", "case", "expected"),
    cases(
        {
            f"{route}-{case}": (route, case, expected)
            for route in ("items", "images")
            for case, expected in IMAGE_CASES.items()
        }
    ),
)
def test_bad_image_upload(
    api: TestClient, bad_images: dict[str, bytes], route: str, case: str, expected: tuple[Any, ...]
) -> None:
    with unchanged(api, COLL, "bad"):
        body = assert_problem(upload(api, COLL, route, "bad", bad_images[case]), *expected)
        assert body["errors"][0]["status"] == "error"


def test_invalid_base64_image(api: TestClient) -> None:
    with unchanged(api, COLL, "bad"):
        r = api.post(f"{COLL}/items", json={"items": [{"id": "bad", "image": "not base64!!"}]})
        assert_problem(r, 422, "invalid-input", "not valid base64")
        r = api.post(f"{COLL}/search", json={"query": {"image": "%%%"}})
        assert_problem(r, 422, "invalid-input", "query image is not valid base64")


@pytest.mark.parametrize("case", ["bomb", "svg", "truncated-jpeg"])
def test_bad_image_as_query(api: TestClient, bad_images: dict[str, bytes], case: str) -> None:
    expected = IMAGE_CASES[case]
    r = api.post(f"{COLL}/search", json={"query": {"image": b64(bad_images[case])}})
    assert_problem(r, *expected)
    files = {"file": ("q.bin", bad_images[case], "application/octet-stream")}
    assert_problem(api.post(f"{COLL}/search/image", files=files), *expected)


def raw_vector(first: str, rest: str = "0.5", dim: int = 64) -> str:
    """A JSON array of ``dim`` numbers written as is, e.g. ``NaN`` (which JSON lacks)."""
    return "[" + ",".join([first] + [rest] * (dim - 1)) + "]"


@pytest.mark.parametrize(
    ("vector", "kind", "needle"),
    cases(
        {
            "wrong-dim": ("[0.1, 0.2, 0.3]", "dimension-mismatch", "3 dimensions; expected 64"),
            "nan": (raw_vector("NaN"), "invalid-input", "nan"),
            "inf": (raw_vector("Infinity"), "invalid-input", "infinite"),
            "minus-inf": (raw_vector("-Infinity"), "invalid-input", "infinite"),
            "float32-overflow": (raw_vector("1e39"), "invalid-input", "infinite"),
            "zero": (raw_vector("0", "0"), "invalid-input", "zero vector"),
        }
    ),
)
def test_bad_vector_item(api: TestClient, vector: str, kind: str, needle: str) -> None:
    body = '{"items": [{"id": "bad", "vector": ' + vector + "}]}"
    with unchanged(api, COLL, "bad"):
        assert_problem(api.post(f"{COLL}/items", content=body, headers=JSON), 422, kind, needle)


@pytest.mark.parametrize(
    ("query", "kind", "needle"),
    cases(
        {
            "wrong-dim": ('{"vector": [1, 2, 3]}', "dimension-mismatch", "expected 64"),
            "term-wrong-dim": (
                '{"terms": [{"text": "red"}, {"vector": [1, 2]}]}',
                "dimension-mismatch",
                "term 1",
            ),
            "nan": ('{"vector": ' + raw_vector("NaN") + "}", "invalid-input", "nan"),
            "overflow": ('{"vector": ' + raw_vector("-1e39") + "}", "invalid-input", "infinite"),
            "zero": ('{"vector": ' + raw_vector("0", "0") + "}", "invalid-input", "zero"),
        }
    ),
)
def test_bad_vector_query(api: TestClient, query: str, kind: str, needle: str) -> None:
    r = api.post(f"{COLL}/search", content='{"query": ' + query + "}", headers=JSON)
    assert_problem(r, 422, kind, needle)


DIRECTION = {"name": "d", "positive": [RED], "negative": [{"text": "blue"}]}
UNKNOWN_ROUTES = {
    "GET /": ("GET", "", {}),
    "DELETE /": ("DELETE", "", {}),
    "search": ("POST", "/search", {"json": {"query": RED}}),
    "search-image": ("POST", "/search/image", {"files": {"file": ("q.png", b"x", "image/png")}}),
    "items": ("POST", "/items", {"json": {"items": [{"id": "a", **RED}]}}),
    "items-bad-b64": ("POST", "/items", {"json": {"items": [{"id": "a", "image": "!!"}]}}),
    "images": ("POST", "/images", {"files": [("files", ("a.png", b"x", "image/png"))]}),
    "list-items": ("GET", "/items", {}),
    "get-item": ("GET", "/items/a", {}),
    "patch-item": ("PATCH", "/items/a", {"json": {"metadata": {"x": 1}}}),
    "delete-item": ("DELETE", "/items/a", {}),
    "duplicates": ("GET", "/duplicates", {}),
    "duplicates-check": ("POST", "/duplicates/check", {"json": {"text": "red"}}),
    "duplicates-resolve": ("POST", "/duplicates/resolve", {"json": {"trash": ["a"]}}),
    "trash": ("GET", "/trash", {}),
    "trash-restore": ("POST", "/trash/restore", {"json": {"ids": ["a"]}}),
    "path": ("POST", "/path", {"json": {"from": RED, "to": {"text": "blue"}}}),
    "directions": ("POST", "/directions", {"json": DIRECTION}),
    "list-directions": ("GET", "/directions", {}),
    "documents": ("POST", "/documents", {"json": {"documents": [{"id": "d", "text": "a b"}]}}),
    "snapshot": ("POST", "/snapshot", {}),
    "snapshot-to-file": ("POST", "/snapshot", {"json": {"file": "a.lsnap"}}),
    "map": ("POST", "/map", {"json": {}}),
    "get-map": ("GET", "/map", {}),
}


@pytest.mark.parametrize(("method", "suffix", "kwargs"), cases(UNKNOWN_ROUTES))
def test_unknown_collection(
    api: TestClient, method: str, suffix: str, kwargs: dict[str, Any]
) -> None:
    r = api.request(method, f"/v1/collections/nope{suffix}", **kwargs)
    assert_problem(r, 404, "not-found", "nope")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with every limit small; collection "lim" (tiny-shapes) holds three texts."""
    small = {
        "max_batch": 3,
        "max_k": 5,
        "max_text_chars": 40,
        "max_path_steps": 4,
        "max_labels": 4,
    }
    limits = LimitSettings(
        **small, max_image_pixels=1000, max_image_bytes=2000, max_body_bytes=64_000
    )
    app = create_app(make_settings(tmp_path_factory.mktemp("limits"), limits=limits))
    with TestClient(app, headers=AUTH) as c:
        assert c.post("/v1/collections", json={"name": "lim", "model": "tiny-shapes"}).is_success
        texts = ["a red circle", "a blue square", "a green triangle"]
        items = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
        assert c.post(f"{LIM}/items", json={"items": items}).status_code == 200
        yield c


BIG_BODY = json.dumps({"items": [{"id": "big", "text": "x" * 70_000}]}).encode()


def test_body_over_limit_with_content_length(limited: TestClient) -> None:
    with unchanged(limited, LIM, "big"):
        r = limited.post(f"{LIM}/items", content=BIG_BODY, headers=JSON)
        assert_problem(
            r, 413, "limit-exceeded", "request body: ", "over the limit of 64000 (LATENTSPACE_"
        )


@pytest.mark.parametrize("route", ["items", "images"])
def test_body_over_limit_chunked(limited: TestClient, route: str) -> None:
    body, headers = BIG_BODY, JSON
    if route == "images":  # a multipart body, re-sent without its Content-Length
        noise = random.Random(1).randbytes(70_000)
        files = [("files", ("n.png", noise, "image/png"))]
        built = limited.build_request("POST", f"{LIM}/images", files=files)
        body, headers = built.read(), {"content-type": built.headers["content-type"]}
    chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
    request = limited.build_request("POST", f"{LIM}/{route}", content=iter(chunks), headers=headers)
    assert "content-length" not in request.headers  # the limit must hold while streaming
    with unchanged(limited, LIM, "big"):
        assert_problem(limited.send(request), 413, "limit-exceeded", "request body")


def test_body_under_limit_chunked_is_accepted(limited: TestClient) -> None:
    body = json.dumps({"query": RED, "k": 2}).encode()
    r = limited.post(f"{LIM}/search", content=iter([body]), headers=JSON)
    assert r.status_code == 200, r.text


FOUR_ITEMS = [{"id": f"b{i}", "text": "hi"} for i in range(4)]
FOUR_FILES = [("files", (f"{i}.png", b"x", "image/png")) for i in range(4)]
PATH = {"from": {"item": "t0"}, "to": {"item": "t1"}, "steps": 5}
# One message shape for every limit: what, how much, the limit, the setting that moves it.
BATCH_LIMIT = "4 items, over the limit of 3 (LATENTSPACE_LIMITS__MAX_BATCH)"
TERMS_LIMIT = "4 query terms, over the limit of 3 (LATENTSPACE_LIMITS__MAX_BATCH)"
TEXT_LIMIT = "41 characters, over the limit of 40 (LATENTSPACE_LIMITS__MAX_TEXT_CHARS)"


@pytest.mark.parametrize(
    ("suffix", "kwargs", "needle"),
    cases(
        {
            "items-batch": ("/items", {"json": {"items": FOUR_ITEMS}}, BATCH_LIMIT),
            "images-batch": ("/images", {"files": FOUR_FILES}, BATCH_LIMIT),
            "query-terms": (
                "/search",
                {"json": {"query": {"terms": [RED] * 4}, "k": 2}},
                TERMS_LIMIT,
            ),
            "k": ("/search", {"json": {"query": RED, "k": 6}}, "k: 6, over the limit of 5"),
            "item-text": ("/items", {"json": {"items": [{"text": "x" * 41}]}}, TEXT_LIMIT),
            "query-text": ("/search", {"json": {"query": {"text": "x" * 41}, "k": 2}}, TEXT_LIMIT),
            "path-steps": ("/path", {"json": PATH}, "5 steps, over the limit of 4"),
            "classify-k": (
                "/classify",
                {"json": {"labels": ["red", "blue"], "items": ["t0"], "k": 5}},
                "k: 5 labels per input, over the limit of 4 (LATENTSPACE_LIMITS__MAX_LABELS)",
            ),
        }
    ),
)
def test_limits(limited: TestClient, suffix: str, kwargs: dict[str, Any], needle: str) -> None:
    with unchanged(limited, LIM, "b0"):
        assert_problem(limited.post(f"{LIM}{suffix}", **kwargs), 413, "limit-exceeded", needle)


def test_rerank_top_n_limit(limited: TestClient) -> None:
    body = {"model": "tiny-shapes", "query": "red", "documents": ["a", "b"], "top_n": 4}
    r = limited.post("/v1/rerank", json=body)
    assert_problem(r, 413, "limit-exceeded", "top_n: 4 results, over the limit of 3")


def test_embeddings_batch_limit(limited: TestClient) -> None:
    r = limited.post("/v1/embeddings", json={"model": "tiny-shapes", "input": ["red"] * 4})
    assert r.status_code == 413, r.text
    error = r.json()["error"]  # OpenAI's error shape on its routes
    assert (error["code"], error["type"]) == ("limit-exceeded", "invalid_request_error")
    assert "4 inputs, over the limit of 3" in error["message"]


@pytest.mark.parametrize(("case", "needle"), [("pixels", "of 1000"), ("bytes", "bytes, over")])
@pytest.mark.parametrize("route", ["items", "images"])
def test_image_limits(limited: TestClient, route: str, case: str, needle: str) -> None:
    if case == "pixels":  # 64×64 of one colour: few bytes, too many pixels
        data = image_bytes(Image.new("RGB", (64, 64), "red"))
    else:  # 30×30 of noise: few pixels, too many bytes
        data = image_bytes(Image.frombytes("RGB", (30, 30), random.Random(3).randbytes(2700)))
    assert len(data) <= 64_000
    with unchanged(limited, LIM, "img"):
        assert_problem(upload(limited, LIM, route, "img", data), 413, "limit-exceeded", needle)


def _nested(depth: int) -> str:
    return '{"$and": [' * depth + '{"colour": "red"}' + "]}" * depth


@pytest.mark.parametrize(
    ("filter_json", "needle"),
    cases(
        {
            "sql-key": (json.dumps({"colour'; DROP TABLE items; --": "red"}), "filter key"),
            "where": (json.dumps({"$where": "1"}), "unknown filter operator '$where'"),
            "regex": (json.dumps({"colour": {"$regex": ".*"}}), "unknown operator '$regex'"),
            "object-value": (json.dumps({"colour": {"$eq": {"$gt": ""}}}), "expected a string"),
            "or-not-list": (json.dumps({"$or": "1=1"}), "non-empty list"),
            "huge-in": (json.dumps({"colour": {"$in": list(range(1025))}}), "at most 1024"),
            "deep-not": ('{"$not": ' * 20 + '{"colour": "red"}' + "}" * 20, "nested too deeply"),
        }
    ),
)
def test_filter_injection_is_refused(api: TestClient, filter_json: str, needle: str) -> None:
    body = '{"query": {"text": "red"}, "filter": ' + filter_json + "}"
    with unchanged(api, COLL):
        r = api.post(f"{COLL}/search", content=body, headers=JSON)
        assert_problem(r, 422, "invalid-input", needle)


def test_filter_nested_past_the_json_depth_limit_is_413(api: TestClient) -> None:
    body = '{"query": {"text": "red"}, "filter": ' + _nested(20) + "}"
    with unchanged(api, COLL):
        r = api.post(f"{COLL}/search", content=body, headers=JSON)
        assert_problem(r, 413, "limit-exceeded", "MAX_JSON_DEPTH")


def test_filter_nested_past_the_parser_is_a_4xx(api: TestClient) -> None:
    body = '{"query": {"text": "red"}, "filter": ' + _nested(3000) + "}"
    with unchanged(api, COLL):
        r = api.post(f"{COLL}/search", content=body, headers=JSON)
        assert r.status_code in (400, 413, 422), r.text
        assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "value", ["red' OR '1'='1", 'red"); DROP TABLE items; --', "%", "*"], ids=str.split
)
def test_sql_in_a_filter_value_is_just_a_string(api: TestClient, value: str) -> None:
    with unchanged(api, COLL):
        r = api.post(f"{COLL}/search", json={"query": RED, "filter": {"colour": value}})
        assert r.status_code == 200, r.text
        assert r.json()["results"] == []
    r = api.post(f"{COLL}/search", json={"query": RED, "filter": {"colour": "red"}})
    assert r.status_code == 200
    assert r.json()["results"]  # the items table is still there and still filters


T = '{"query": {"text": "red"}'  # a valid query, to which a case adds a bad field


@pytest.mark.parametrize(
    ("body", "needle"),
    cases(
        {
            "two-sources": ('{"query": {"text": "red", "item": "s1"}}', "exactly one of"),
            "no-source": ('{"query": {}}', "exactly one of"),
            "weight-only": ('{"query": {"weight": 2}}', "exactly one of"),
            "empty-terms": ('{"query": {"terms": []}}', "at least 1"),
            "bad-term-in-terms": (
                '{"query": {"terms": [{"text": "a"}, {"text": "b", "item": "s1"}]}}',
                "exactly one of",
            ),
            "unknown-field": ('{"query": {"text": "red", "colour": "red"}}', "colour"),
            "negative-offset": (T + ', "offset": -1}', "offset"),
            "k-zero": (T + ', "k": 0}', "k: input should be greater than or equal to 1"),
            "weight-nan": ('{"query": {"text": "red", "weight": NaN}}', "finite"),
            "min-score-inf": (T + ', "min_score": Infinity}', "finite"),
            "no-query": ('{"k": 3}', "query"),
            "bad-include": (T + ', "include": ["password"]}', "include"),
            "broken-json": (T, "json"),
        }
    ),
)
def test_malformed_search(api: TestClient, body: str, needle: str) -> None:
    r = api.post(f"{COLL}/search", content=body, headers=JSON)
    assert_problem(r, 422, "validation-error", needle)


def test_id_twice_in_one_batch(api: TestClient) -> None:
    items = [{"id": "twice", **RED}, {"id": "once", "text": "blue"}, {"id": "twice", "text": "g"}]
    with unchanged(api, COLL, "twice", "once"):
        r = api.post(f"{COLL}/items", json={"items": items})
        assert_problem(r, 422, "invalid-input", "'twice' appears twice")


GHOST = {"item": "no-such-item"}


@pytest.mark.parametrize(
    ("suffix", "payload", "needle"),
    cases(
        {
            "item-term": ("/search", {"query": GHOST}, "no-such-item"),
            "item-in-terms": ("/search", {"query": {"terms": [RED, GHOST]}}, "no-such-item"),
            "direction-term": ("/search", {"query": {"direction": "no-such"}}, "no-such"),
            "path-to": ("/path", {"from": {"item": "s0"}, "to": GHOST}, "no-such-item"),
            "direction-create": ("/directions", {**DIRECTION, "positive": [GHOST]}, "no-such"),
        }
    ),
)
def test_unknown_item_or_direction(
    api: TestClient, suffix: str, payload: dict[str, Any], needle: str
) -> None:
    with unchanged(api, COLL):
        assert_problem(api.post(f"{COLL}{suffix}", json=payload), 404, "not-found", needle)
    assert api.get(f"{COLL}/directions").json()["directions"] == []


def test_unknown_item_and_direction_routes(api: TestClient) -> None:
    with unchanged(api, COLL):
        assert_problem(api.get(f"{COLL}/items/ghost"), 404, "not-found", "ghost")
        assert_problem(api.delete(f"{COLL}/items/ghost"), 404, "not-found", "ghost")
        r = api.patch(f"{COLL}/items/ghost", json={"metadata": {"a": 1}})
        assert_problem(r, 404, "not-found", "ghost")
        assert_problem(api.delete(f"{COLL}/directions/ghost"), 404, "not-found", "ghost")
