"""`POST …/vectors`: bulk raw vectors as base64 float32, nested lists, or NumPy .npy arrays."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import assert_problem, unchanged

DIM, N = 16, 40
BASE = "/v1/collections/bulk"


@pytest.fixture
def bulk(db_client: TestClient) -> TestClient:
    r = db_client.post("/v1/collections", json={"name": "bulk", "dim": DIM, "index": "flat"})
    assert r.status_code == 201, r.text
    return db_client


def rows(n: int = N, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def b64(x: np.ndarray) -> str:
    return base64.b64encode(x.astype("<f4").tobytes()).decode()


def npy(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, x)
    return out.getvalue()


def stored(c: TestClient, item_id: str) -> tuple[np.ndarray, dict[str, Any]]:
    r = c.get(f"{BASE}/items/{item_id}", params={"include_vector": True})
    assert r.status_code == 200, r.text
    body = r.json()
    return np.asarray(body["vector"], dtype=np.float32), body


def assert_each_row_finds_itself(c: TestClient, x: np.ndarray, ids: list[str]) -> None:
    for i in (0, len(x) // 2, len(x) - 1):
        r = c.post(f"{BASE}/search", json={"query": {"vector": x[i].tolist()}, "k": 1})
        assert r.json()["results"][0]["id"] == ids[i]


def test_base64_rows_with_columns_are_stored_exactly(bulk: TestClient) -> None:
    x = rows()
    ids = [f"r{i}" for i in range(N)]
    metadata = [{"row": i, "half": i < N // 2} for i in range(N)]
    body = {"ids": ids, "vectors": b64(x), "metadata": metadata, "uris": [f"u/{i}" for i in ids]}
    r = bulk.post(f"{BASE}/vectors", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == N
    for i in (0, 7, N - 1):
        vector, item = stored(bulk, ids[i])
        np.testing.assert_array_equal(vector, x[i])  # float32 in, the same bits out
        assert (item["metadata"], item["uri"]) == (metadata[i], f"u/r{i}")
    assert_each_row_finds_itself(bulk, x, ids)
    flt = {"query": {"vector": x[0].tolist()}, "k": N, "filter": {"half": True}}
    hits = bulk.post(f"{BASE}/search", json=flt).json()["results"]
    assert {h["id"] for h in hits} == set(ids[: N // 2])
    again = bulk.post(f"{BASE}/vectors", json=body)  # the same rows again: nothing to write
    assert again.json()["unchanged"] == N


def test_rows_are_checked_for_duplicates_only_when_asked(bulk: TestClient) -> None:
    x = rows(10)
    as_items = [{"id": f"a{i}", "vector": v.tolist()} for i, v in enumerate(x)]
    one = bulk.post(f"{BASE}/items", json={"items": as_items}).json()
    body = {"ids": [f"b{i}" for i in range(10)], "vectors": b64(x)}
    two = bulk.post(f"{BASE}/vectors", json=body).json()
    assert one["created"] == two["created"] == 10
    # the bulk path skips the check unless on_duplicate is given
    assert [s.get("duplicate_of") for s in two["items"]] == [None] * 10
    body["ids"] = [f"c{i}" for i in range(10)]
    three = bulk.post(f"{BASE}/vectors", json=body, params={"on_duplicate": "store"}).json()
    # each c row duplicates its a row and its b row, and says so as /items would
    assert three["created"] == 10
    for i, s in enumerate(three["items"]):
        assert s["duplicate_of"]["id"] in {f"a{i}", f"b{i}"}
        assert s["duplicate_of"]["tier"] == "identical"


def test_on_duplicate_skips_or_rejects_rows(bulk: TestClient) -> None:
    x = rows(4)
    assert bulk.post(f"{BASE}/vectors", json={"ids": list("abcd"), "vectors": b64(x)}).is_success
    near = x[1] + 0.01 * rows(1, seed=5)[0]  # cosine about 0.9999 to row 1
    fresh = rows(1, seed=9)[0]
    body = {"ids": ["near", "fresh"], "vectors": b64(np.stack([near, fresh]))}
    policy = json.dumps({"identical": "reject", "similar": "skip"})
    r = bulk.post(f"{BASE}/vectors", json=body, params={"on_duplicate": policy})
    assert r.status_code == 200, r.text
    statuses = {s["id"]: (s["status"], s.get("duplicate_of")) for s in r.json()["items"]}
    assert statuses["fresh"] == ("created", None)
    assert statuses["near"][0] == "skipped"
    assert (statuses["near"][1]["id"], statuses["near"][1]["tier"]) == ("b", "similar")
    with unchanged(bulk, BASE):  # a rejected copy writes nothing of its request
        copy = npy(np.stack([rows(1, seed=11)[0], x[2]]))
        r = bulk.post(
            f"{BASE}/vectors",
            content=copy,
            headers={"content-type": "application/x-npy"},
            params={"on_duplicate": "reject"},
        )
        assert_problem(r, 409, "duplicate")
        assert "'c'" in r.json()["detail"]


@pytest.mark.parametrize("value", ["keep", '{"similar": "drop"}', '{"other": "skip"}', "[1"])
def test_a_bad_on_duplicate_is_refused(bulk: TestClient, value: str) -> None:
    with unchanged(bulk, BASE):
        body = {"ids": ["x"], "vectors": b64(rows(1))}
        r = bulk.post(f"{BASE}/vectors", json=body, params={"on_duplicate": value})
        assert_problem(r, 422, "invalid-input", "on_duplicate")


def test_nested_lists_work_too(bulk: TestClient) -> None:
    x = rows(5)
    r = bulk.post(f"{BASE}/vectors", json={"ids": list("abcde"), "vectors": x.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(stored(bulk, "c")[0], x[2], atol=1e-7)


def test_a_raw_npy_body_takes_content_hashes_as_ids(bulk: TestClient) -> None:
    x = rows(8).astype(np.float64)  # float64 is accepted and stored as float32
    r = bulk.post(f"{BASE}/vectors", content=npy(x), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200, r.text
    ids = [s["id"] for s in r.json()["items"]]
    assert ids == [hashlib.sha256(v.astype(np.float32).tobytes()).hexdigest() for v in x]
    assert_each_row_finds_itself(bulk, x.astype(np.float32), ids)


def test_multipart_carries_an_npy_file_and_json_columns(bulk: TestClient) -> None:
    x = rows(6)
    ids = [f"m{i}" for i in range(6)]
    r = bulk.post(
        f"{BASE}/vectors",
        files={"vectors": ("x.npy", npy(x), "application/x-npy")},
        data={"ids": json.dumps(ids), "metadata": json.dumps({"source": "npy"})},
    )
    assert r.status_code == 200, r.text
    vector, item = stored(bulk, "m3")
    np.testing.assert_array_equal(vector, x[3])
    assert item["metadata"] == {"source": "npy"}


def test_a_bad_row_fails_alone(bulk: TestClient) -> None:
    x = rows(4)
    x[1, 0] = np.nan
    r = bulk.post(f"{BASE}/vectors", json={"ids": list("wxyz"), "vectors": b64(x)})
    assert r.status_code == 207, r.text
    statuses = [s["status"] for s in r.json()["items"]]
    assert statuses == ["created", "error", "created", "created"]
    assert "nan" in r.json()["items"][1]["error"]["detail"].lower()


def _pickled() -> bytes:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return out.getvalue()


def _npz() -> bytes:
    out = io.BytesIO()
    np.savez(out, x=rows(2))
    return out.getvalue()


JSON_CASES = [
    ({"vectors": "not base64!"}, 422, "invalid-input", "base64"),
    ({"vectors": base64.b64encode(b"\0" * 6).decode()}, 422, "invalid-input", "float32"),
    ({"vectors": base64.b64encode(b"\0" * 4 * (DIM + 1)).decode()}, 422, "invalid-input", "dim"),
    ({"vectors": ""}, 422, "invalid-input", "no vectors"),
    ({"vectors": [[0.1] * DIM, [0.1] * 3]}, 422, "invalid-input", "equal length"),
    ({"vectors": [[0.1] * 3]}, 422, "invalid-input", f"rows of {DIM}"),
    ({"vectors": b64(rows(3)), "ids": ["a"]}, 422, "invalid-input", "ids has 1 entries"),
    ({"vectors": b64(rows(2)), "metadata": [{}]}, 422, "invalid-input", "metadata has 1"),
    ({"vectors": b64(rows(2)), "metadata": "x"}, 422, "validation-error", "metadata"),
    ({"vectors": b64(rows(2)), "ids": ["a", "a"]}, 422, "invalid-input", "twice"),
    ({"vectors": b64(rows(2)), "surprise": 1}, 422, "validation-error", "surprise"),
]


@pytest.mark.parametrize(("body", "status", "kind", "needle"), JSON_CASES)
def test_bad_json_bodies_get_a_problem_and_store_nothing(
    bulk: TestClient, body: dict[str, Any], status: int, kind: str, needle: str
) -> None:
    with unchanged(bulk, BASE, "a"):
        assert_problem(bulk.post(f"{BASE}/vectors", json=body), status, kind, needle)


def _lying_header(rows_claimed: int) -> bytes:
    # a header that claims far more rows than the body holds: NumPy would reserve them first
    real = npy(rows(2))
    claim = f"({rows_claimed}, ".encode()
    grown = len(claim) - len(b"(2, ")
    lied = real.replace(b"(2, ", claim, 1)
    end = lied.index(b"\n")  # the header's padding shrinks by as much: its length stays
    return lied[: end - grown] + lied[end:]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\x93NUMPY garbage", "npy"),
        (b"", "npy"),
        (_pickled(), "npy"),
        (_npz(), "npz"),
        (npy(rows(3)[:, :5]), "columns"),
        (npy(np.zeros((2, DIM), dtype=np.int32)), "int32"),
        (npy(np.zeros((0, DIM), dtype=np.float32)), "no vectors"),
        (_lying_header(10**10), "body holds"),
    ],
    ids=["garbage", "empty", "pickle", "npz", "columns", "int", "no-rows", "header-lies"],
)
def test_bad_npy_bodies_get_a_problem(bulk: TestClient, payload: bytes, needle: str) -> None:
    headers = {"content-type": "application/x-npy"}
    with unchanged(bulk, BASE):
        r = bulk.post(f"{BASE}/vectors", content=payload, headers=headers)
        assert_problem(r, 422, "invalid-input", needle)


def test_bad_multipart_and_media_types_get_a_problem(bulk: TestClient) -> None:
    with unchanged(bulk, BASE):
        no_file = bulk.post(f"{BASE}/vectors", files={"other": ("x", b"1")})
        assert_problem(no_file, 422, "invalid-input", "vectors")
        bad_ids = bulk.post(
            f"{BASE}/vectors",
            files={"vectors": ("x.npy", npy(rows(2)), "application/x-npy")},
            data={"ids": "[1, 2"},
        )
        assert_problem(bad_ids, 422, "invalid-input", "ids is not json")
        deep = bulk.post(
            f"{BASE}/vectors",
            files={"vectors": ("x.npy", npy(rows(2)), "application/x-npy")},
            data={"metadata": "[" * 100_000 + "]" * 100_000},
        )
        assert_problem(deep, 422, "invalid-input", "nested too deeply")
        wrong_ids = bulk.post(
            f"{BASE}/vectors",
            files={"vectors": ("x.npy", npy(rows(2)), "application/x-npy")},
            data={"ids": "[1, 2]"},
        )
        assert_problem(wrong_ids, 422, "validation-error", "ids")
        text = bulk.post(f"{BASE}/vectors", content=b"1,2", headers={"content-type": "text/csv"})
        assert_problem(text, 415, "unsupported-media-type", "text/csv")


def test_limits_and_missing_collections(bulk: TestClient) -> None:
    too_many = {"vectors": b64(rows(1025))}  # max_batch is 1024
    assert_problem(bulk.post(f"{BASE}/vectors", json=too_many), 413, "limit-exceeded", "1024")
    missing = bulk.post("/v1/collections/nope/vectors", json={"vectors": b64(rows(1))})
    assert_problem(missing, 404, "not-found", "nope")


def test_it_is_documented_with_its_three_body_types(bulk: TestClient) -> None:
    operation = bulk.get("/openapi.json").json()["paths"][
        f"{BASE.replace('bulk', '{name}')}/vectors"
    ]
    assert set(operation["post"]["requestBody"]["content"]) == {
        "application/json",
        "application/x-npy",
        "multipart/form-data",
    }


def test_it_needs_the_admin_key(bulk: TestClient) -> None:
    r = bulk.post(
        f"{BASE}/vectors",
        json={"vectors": b64(rows(1))},
        headers={"Authorization": "Bearer not-the-key"},
    )
    assert_problem(r, 401, "unauthorized")


def test_a_query_vector_may_come_as_base64(bulk: TestClient) -> None:
    x = rows(20, seed=5)
    ids = [f"q{i}" for i in range(20)]
    assert bulk.post(f"{BASE}/vectors", json={"ids": ids, "vectors": b64(x)}).status_code == 200
    for i in (0, 11):
        as_list = bulk.post(f"{BASE}/search", json={"query": {"vector": x[i].tolist()}, "k": 5})
        as_b64 = bulk.post(f"{BASE}/search", json={"query": {"vector": b64(x[i])}, "k": 5})
        assert as_b64.status_code == 200, as_b64.text
        assert as_b64.json()["results"][0]["id"] == ids[i]
        assert [h["id"] for h in as_b64.json()["results"]] == [
            h["id"] for h in as_list.json()["results"]
        ]
    composite = {"terms": [{"vector": b64(x[3]), "weight": 1.0}, {"item": "q4", "weight": 0.2}]}
    hits = bulk.post(f"{BASE}/search", json={"query": composite, "k": 1}).json()["results"]
    assert hits[0]["id"] == "q3"


@pytest.mark.parametrize(
    ("vector", "kind", "needle"),
    [
        ("not base64!", "invalid-input", "not valid base64"),
        (base64.b64encode(b"\0" * 6).decode(), "invalid-input", "6 bytes, not a whole number"),
        (b64(np.ones((1, DIM + 1))), "dimension-mismatch", "17 dimensions"),
        (b64(np.full((1, DIM), np.nan)), "invalid-input", "NaN"),
        ("", "validation-error", "vector"),
    ],
    ids=["not-base64", "partial-float", "wrong-dim", "nan", "empty"],
)
def test_bad_base64_query_vectors_get_a_problem(
    bulk: TestClient, vector: str, kind: str, needle: str
) -> None:
    r = bulk.post(f"{BASE}/search", json={"query": {"vector": vector}, "k": 3})
    assert_problem(r, 422, kind, needle)
