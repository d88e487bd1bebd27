"""Duplicate tiers on real photos through the API: each finding's tier and evidence, the
batch's first occurrence as the original, on_duplicate per tier, clusters that do not
chain, the keep suggestion, resolution into the trash and restoring from it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.photos import ORIGINALS, UNRELATED, VARIANTS, encode, photo, variant
from tests.fixtures import ADMIN_KEY, b64, make_settings

from latentspace.api import create_app
from latentspace.settings import SearchSettings

C = "/v1/collections/photos"


@pytest.fixture(scope="module")
def photos() -> dict[str, Any]:
    return {name: photo(name) for name in (*ORIGINALS, *UNRELATED)}


def _start(c: TestClient, photos: dict[str, Any], names: tuple[str, ...]) -> None:
    assert c.post("/v1/collections", json={"name": "photos", "model": "tiny-shapes"}).is_success
    items = [{"id": n, "image": b64(encode(photos[n])), "metadata": {"n": n}} for n in names]
    r = c.post(f"{C}/items", json={"items": items})
    assert r.status_code == 200, r.text


@pytest.fixture
def library(db_client: TestClient, photos: dict[str, Any]) -> TestClient:
    """The originals and half the unrelated photos stored, on SQLite and PostgreSQL."""
    _start(db_client, photos, (*ORIGINALS, *UNRELATED[:4]))
    return db_client


def _check(c: TestClient, data: bytes, **options: Any) -> dict[str, Any]:
    r = c.post(f"{C}/duplicates/check", json={"image": b64(data), **options})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _count(c: TestClient) -> int:
    count: int = c.get(C).json()["count"]
    return count


def test_check_names_the_tier_and_evidence_of_each_copy(
    library: TestClient, photos: dict[str, Any]
) -> None:
    same_image = []
    for name in ORIGINALS:
        identical = _check(library, encode(photos[name]))["findings"][0]
        assert identical == {"id": name, "tier": "identical", "cosine": 1.0, "hamming": 0}
        for kind in VARIANTS:
            found = _check(library, variant(photos[name], kind))
            best = found["findings"][0]
            assert best["id"] == name, (name, kind, found)
            same_image.append(best["tier"] == "same_image" and best["hamming"] <= found["hamming"])
    # recall of the same-image tier on re-encodes, resizes, EXIF rotation and grayscale
    assert sum(same_image) / len(same_image) >= 0.9
    for name in UNRELATED[4:]:  # not stored: nothing is the same image
        found = _check(library, encode(photos[name]))["findings"]
        assert [f for f in found if f["tier"] != "similar"] == [], (name, found)


def test_ingest_reports_duplicates_and_the_first_of_a_batch_is_the_original(
    client: TestClient, photos: dict[str, Any]
) -> None:
    assert client.post("/v1/collections", json={"name": "photos", "model": "tiny-shapes"})
    chelsea = photos["chelsea"]
    files = [
        ("files", ("cat.png", encode(chelsea), "image/png")),
        ("files", ("cat-small.png", variant(chelsea, "resize50"), "image/png")),
        ("files", ("cat.jpg", variant(chelsea, "jpeg60"), "image/jpeg")),
        ("files", ("coffee.png", encode(photos["coffee"]), "image/png")),
    ]
    r = client.post(f"{C}/images", files=files)
    assert r.status_code == 200, r.text
    first, small, jpeg, coffee = r.json()["items"]
    assert first["duplicate_of"] is None  # the first occurrence is the original
    assert coffee["duplicate_of"] is None or coffee["duplicate_of"]["tier"] == "similar"
    for later in (small, jpeg):  # both name the first, not each other
        assert later["duplicate_of"]["id"] == "cat.png"
        assert later["duplicate_of"]["tier"] == "same_image"
        assert 0 <= later["duplicate_of"]["hamming"] <= 10
        assert -1.0 <= later["duplicate_of"]["cosine"] <= 1.0


def test_on_duplicate_skips_or_rejects_per_tier(
    library: TestClient, photos: dict[str, Any]
) -> None:
    before = _count(library)
    astronaut = photos["astronaut"]
    items = [
        {"id": "copy", "image": b64(encode(astronaut))},
        {"id": "gray", "image": b64(variant(astronaut, "gray"))},
        {"id": "new", "image": b64(encode(photos["gravel"]))},
        {"id": "new-again", "image": b64(variant(photos["gravel"], "jpeg60"))},
    ]
    policy = {"identical": "skip", "same_image": "skip", "similar": "store"}
    r = library.post(f"{C}/items", json={"items": items, "on_duplicate": policy})
    assert r.status_code == 200, r.text
    body = r.json()
    statuses = {s["id"]: (s["status"], (s["duplicate_of"] or {}).get("id")) for s in body["items"]}
    assert statuses == {
        "copy": ("skipped", "astronaut"),
        "gray": ("skipped", "astronaut"),
        "new": ("created", None),
        "new-again": ("skipped", "new"),  # the batch's earlier, kept item is its original
    }
    assert (body["created"], body["skipped"]) == (1, 3)
    assert _count(library) == before + 1
    assert library.get(f"{C}/items/gray").status_code == 404
    # reject: one duplicate refuses the whole request, and nothing of it is written
    items = [
        {"id": "fresh", "image": b64(encode(photos["horse"]))},
        {"id": "coffee-again", "image": b64(variant(photos["coffee"], "exif_rot"))},
    ]
    r = library.post(f"{C}/items", json={"items": items, "on_duplicate": "reject"})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"] == "/problems/duplicate"
    assert "'coffee'" in problem["detail"]
    assert "same_image" in problem["detail"]
    assert library.get(f"{C}/items/fresh").status_code == 404
    assert _count(library) == before + 1
    # the same as a multipart form field
    files = [("files", ("c.jpg", variant(photos["coffee"], "jpeg60"), "image/jpeg"))]
    r = library.post(f"{C}/images", files=files, data={"on_duplicate": "skip"})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["status"] == "skipped"


def test_clusters_do_not_chain(client: TestClient) -> None:
    # four unit vectors 14° apart: neighbours at cosine 0.970, two steps at 0.883
    assert client.post("/v1/collections", json={"name": "chain", "dim": 2}).is_success
    angles = {"a": 0, "b": 14, "c": 28, "d": 42}
    vectors = [[math.cos(math.radians(t)), math.sin(math.radians(t))] for t in angles.values()]
    r = client.post("/v1/collections/chain/vectors", json={"ids": list(angles), "vectors": vectors})
    assert r.status_code == 200, r.text
    r = client.get("/v1/collections/chain/duplicates", params={"threshold": 0.95})
    assert r.status_code == 200, r.text
    clusters = r.json()["clusters"]
    assert [(c["representative"], [m["id"] for m in c["members"]]) for c in clusters] == [
        ("a", ["a", "b"]),
        ("c", ["c", "d"]),
    ]
    for cluster in clusters:
        rep, member = cluster["members"]
        assert rep["tier"] is None
        assert rep["cosine"] == 1.0
        assert member["tier"] == "similar"
        assert member["cosine"] == pytest.approx(0.970, abs=1e-3)


def test_copies_cluster_before_similar_shots(client: TestClient) -> None:
    # "r" is older and similar to both; "a" and "a-copy" hold the same vector: the copies
    # stay together, and the similar item joins their cluster rather than leading it
    assert client.post("/v1/collections", json={"name": "pair", "dim": 2}).is_success
    turn = math.radians(10)
    a = [math.cos(turn), math.sin(turn)]
    body = {"ids": ["r", "a", "a-copy"], "vectors": [[1.0, 0.0], a, a]}
    r = client.post("/v1/collections/pair/vectors", json=body)
    assert r.status_code == 200, r.text
    r = client.get("/v1/collections/pair/duplicates", params={"threshold": 0.95})
    (cluster,) = r.json()["clusters"]
    assert cluster["representative"] == "a"
    tiers = {m["id"]: m["tier"] for m in cluster["members"]}
    assert tiers == {"a": None, "a-copy": "identical", "r": "similar"}


def test_clusters_by_tier_suggest_the_largest_copy(
    client: TestClient, photos: dict[str, Any]
) -> None:
    _start(client, photos, ("coffee", "rocket"))
    rocket = photos["rocket"]
    items = [
        {"id": "rocket-small", "image": b64(variant(rocket, "resize50"))},
        {"id": "rocket-again", "image": b64(encode(rocket))},
        {"id": "rocket-tagged", "image": b64(variant(rocket, "resize50")), "metadata": {"a": 1}},
    ]
    assert client.post(f"{C}/items", json={"items": items}).status_code == 200
    r = client.get(f"{C}/duplicates", params={"tier": "same_image"})
    assert r.status_code == 200, r.text
    (cluster,) = r.json()["clusters"]
    assert cluster["representative"] == "rocket"
    members = {m["id"]: m for m in cluster["members"]}
    assert set(members) == {"rocket", "rocket-small", "rocket-again", "rocket-tagged"}
    assert members["rocket-again"]["tier"] == "identical"
    assert members["rocket-small"]["tier"] == "same_image"
    # most pixels first (the full-size two), then the same bytes, then the most metadata
    assert members["rocket"]["pixels"] == 4 * members["rocket-small"]["pixels"]
    assert cluster["keep"] == "rocket"
    r = client.get(f"{C}/duplicates", params={"tier": "identical"})
    assert sorted(sorted(m["id"] for m in c["members"]) for c in r.json()["clusters"]) == [
        ["rocket", "rocket-again"],
        ["rocket-small", "rocket-tagged"],  # the same bytes, under two ids
    ]


def test_resolve_trashes_merges_and_restores(library: TestClient, photos: dict[str, Any]) -> None:
    items = [
        {"id": "small", "image": b64(variant(photos["chelsea"], "resize50")), "metadata": {"x": 1}},
        {"id": "gray", "image": b64(variant(photos["chelsea"], "gray")), "metadata": {"n": "g"}},
    ]
    assert library.post(f"{C}/items", json={"items": items}).status_code == 200
    body = {"keep": ["chelsea"], "trash": ["small", "gray"], "merge_metadata": True}
    r = library.post(f"{C}/duplicates/resolve", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["trashed"] == ["small", "gray"]
    kept = library.get(f"{C}/items/chelsea").json()
    assert kept["metadata"] == {"n": "chelsea", "x": 1}  # missing keys merged, its own kept
    assert library.get(f"{C}/items/small").status_code == 404
    trash = library.get(f"{C}/trash").json()["items"]
    assert [t["id"] for t in trash] == ["small", "gray"]
    # gone from checks and searches
    found = _check(library, variant(photos["chelsea"], "gray"))["findings"]
    assert [f["id"] for f in found if f["tier"] != "similar"] == ["chelsea"]
    r = library.post(f"{C}/trash/restore", json={"ids": ["gray"]})
    assert r.status_code == 200, r.text
    assert library.get(f"{C}/items/gray").json()["metadata"] == {"n": "g"}
    found = _check(library, variant(photos["chelsea"], "gray"))["findings"]
    assert found[0] == {"id": "gray", "tier": "identical", "cosine": 1.0, "hamming": 0}
    query = {"image": b64(variant(photos["chelsea"], "gray"))}
    r = library.post(f"{C}/search", json={"query": query, "k": 1})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == "gray"
    assert [t["id"] for t in library.get(f"{C}/trash").json()["items"]] == ["small"]
    again = library.post(f"{C}/trash/restore", json={"ids": ["gray"]})
    assert again.status_code == 404
    assert "not in the trash" in again.json()["detail"]
    # upserting a trashed id brings it back as a new write and empties its trash entry
    small = [{"id": "small", "image": b64(variant(photos["chelsea"], "resize50"))}]
    assert library.post(f"{C}/items", json={"items": small}).json()["items"][0]["status"] == (
        "created"
    )
    assert library.get(f"{C}/trash").json()["items"] == []


@pytest.fixture
def short_trash(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, search=SearchSettings(trash_days=0.1 / 86400))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def test_past_the_retention_period_nothing_is_restored(
    short_trash: TestClient, photos: dict[str, Any]
) -> None:
    _start(short_trash, photos, ("coffee", "moon"))
    r = short_trash.post(f"{C}/duplicates/resolve", json={"keep": [], "trash": ["moon"]})
    assert r.status_code == 200, r.text
    time.sleep(0.3)  # three retention periods
    assert short_trash.get(f"{C}/trash").json()["items"] == []
    r = short_trash.post(f"{C}/trash/restore", json={"ids": ["moon"]})
    assert r.status_code == 404
    assert short_trash.get(f"{C}/items/moon").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "needle"),
    [
        ("POST", "/duplicates/resolve", {"keep": ["coffee"], "trash": ["nope"]}, 404, "nope"),
        ("POST", "/duplicates/resolve", {"keep": ["coffee"], "trash": ["coffee"]}, 422, "both"),
        ("POST", "/duplicates/resolve", {"keep": ["coffee"], "trash": []}, 422, "trash"),
        ("POST", "/duplicates/resolve", {"trash": ["moon", "moon"]}, 422, "twice"),
        ("POST", "/duplicates/resolve", {"trash": ["moon"], "merge_metadata": True}, 422, "keep"),
        ("POST", "/trash/restore", {"ids": ["coffee"]}, 404, "not in the trash"),
        ("POST", "/trash/restore", {"ids": []}, 422, "ids"),
        ("POST", "/duplicates/check", {"text": "x", "hamming": 21}, 422, "hamming"),
        ("POST", "/items", {"items": [{"text": "x"}], "on_duplicate": "drop"}, 422, "on_duplicate"),
        ("POST", "/items", {"items": [{"text": "x"}], "on_duplicate": {"near": "skip"}}, 422, ""),
        ("GET", "/duplicates?tier=exact", None, 422, "tier"),
        ("GET", "/duplicates?hamming=-1", None, 422, "hamming"),
    ],
)
def test_bad_requests_are_problems(
    client: TestClient,
    photos: dict[str, Any],
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    status: int,
    needle: str,
) -> None:
    _start(client, photos, ("coffee", "moon"))
    r = client.request(method, f"{C}{path}", json=payload)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert needle in r.text
    assert _count(client) == 2


def test_a_bad_on_duplicate_form_field_is_a_problem(
    client: TestClient, photos: dict[str, Any]
) -> None:
    _start(client, photos, ("coffee",))
    files = [("files", ("c.png", encode(photos["coffee"]), "image/png"))]
    for bad in ("drop", '{"identical": "maybe"}', "[1]"):
        r = client.post(f"{C}/images", files=files, data={"on_duplicate": bad})
        assert r.status_code == 422, r.text
        assert "on_duplicate" in r.json()["detail"]
    assert _count(client) == 1
