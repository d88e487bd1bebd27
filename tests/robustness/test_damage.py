"""Damage in stored data stays with what it touches: written straight into the SQLite file
behind the server's back, then the server started on it. It starts, serves the rest, names
the damage in ``/readyz`` with its repair, and the repairing write clears it."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.api.photos import ORIGINALS, encode, photo
from tests.fixtures import ADMIN_KEY, b64, make_settings

from latentspace.api import create_app

C = "/v1/collections/c"


@contextmanager
def running(data: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(data))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def ready(c: TestClient) -> dict[str, Any]:
    """``/readyz`` once the start-up checks and caches are done."""
    for _ in range(300):
        body: dict[str, Any] = c.get("/readyz").json()
        if body.get("warm"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"never warm: {body}")


def damage(data: Path, sql: str, *args: Any) -> None:
    with sqlite3.connect(data / "latentspace.db") as db:
        db.execute(sql, args)


def texts(data: Path) -> None:
    with running(data) as c:
        assert c.post("/v1/collections", json={"name": "c", "dim": 2}).status_code == 201
        items = [
            {
                "id": f"t{i}",
                "vector": [1.0, i / 10],
                "text": f"red apple number {i}",
                "metadata": {"n": i},
            }
            for i in range(5)
        ]
        assert c.post(f"{C}/items", json={"items": items}).status_code == 200


def test_an_item_whose_metadata_is_not_json_is_cleared_and_named(tmp_path: Path) -> None:
    texts(tmp_path)
    damage(tmp_path, "UPDATE items SET metadata = ? WHERE external_id = 't2'", '{"n": 2')
    damage(tmp_path, "UPDATE items SET metadata = ? WHERE external_id = 't3'", "[3]")
    with running(tmp_path) as c:  # starts: the one row took nothing else down
        body = ready(c)
        assert body["status"] == "degraded"
        named = " ".join(body["damaged"]["c"])
        assert "'t2'" in named
        assert '{"n": 2' in named
        assert "'t3'" in named
        assert "PATCH or PUT" in named
        assert c.get(f"{C}/items/t2").json()["metadata"] == {}
        assert c.get(f"{C}/items/t1").json()["metadata"] == {"n": 1}
        hits = c.post(f"{C}/search", json={"query": {"vector": [1, 0]}, "filter": {"n": 1}})
        assert hits.status_code == 200, hits.text  # SQL filters work again
        assert [h["id"] for h in hits.json()["results"]] == ["t1"]
        listed = c.get(f"{C}/items").json()
        assert len(listed["items"]) == 5
        r = c.patch(f"{C}/items/t2", json={"metadata": {"n": 2}})  # the repair
        assert r.status_code == 200, r.text
        r = c.patch(f"{C}/items/t3", json={"metadata": {"n": 3}})
        assert r.status_code == 200, r.text
        assert "damaged" not in c.get("/readyz").json() or not c.get("/readyz").json()["damaged"]
    with running(tmp_path) as c:  # and it stays repaired
        assert ready(c)["status"] == "ok"
        assert c.get(f"{C}/items/t2").json()["metadata"] == {"n": 2}


def test_keyword_settings_that_are_not_valid_fall_back_to_the_defaults(tmp_path: Path) -> None:
    texts(tmp_path)
    for stored in ('{"stemmer": "klingon"}', '{"k1": "abc"}', "[1, 2]", '{"stemmer": '):
        damage(tmp_path, "UPDATE collections SET keyword = ?", stored)
        with running(tmp_path) as c:
            listed = c.get("/v1/collections")
            assert listed.status_code == 200, listed.text
            stats = c.get(C).json()
            assert stats["keyword"]["stemmer"] == "english"  # the defaults serve
            r = c.post(f"{C}/search", json={"query": {"keyword": "apples"}, "k": 2})
            assert r.status_code == 200, r.text
            assert len(r.json()["results"]) == 2  # stemmed: apples finds apple
            named = " ".join(ready(c)["damaged"]["c"])
            assert "keyword settings: the stored keyword settings" in named, stored
            assert "not valid" in named, stored


def test_an_image_field_that_is_not_an_integer_is_derived_anew(tmp_path: Path) -> None:
    shots = {name: encode(photo(name)) for name in ORIGINALS[:3]}
    with running(tmp_path) as c:
        spec = {"name": "c", "model": "tiny-shapes"}
        assert c.post("/v1/collections", json=spec).status_code == 201
        items = [{"id": n, "image": b64(data)} for n, data in shots.items()]
        assert c.post(f"{C}/items", json={"items": items}).status_code == 200
        before = c.post(f"{C}/duplicates/check", json={"image": b64(shots["astronaut"])})
    first, second, third = shots
    damage(tmp_path, "UPDATE items SET phash = 'abc' WHERE external_id = ?", first)
    damage(tmp_path, "UPDATE items SET pixels = 'big' WHERE external_id = ?", second)
    damage(tmp_path, "UPDATE items SET phash = 'x1' WHERE external_id = ?", third)
    (tmp_path / "blobs" / sha(shots[third])[:2] / sha(shots[third])).write_bytes(b"gone")
    with running(tmp_path) as c:
        named = " ".join(ready(c)["damaged"]["c"])
        assert f"item {first!r}: stored phash 'abc' was not an integer; stored as" in named
        assert f"item {second!r}: stored pixels 'big' was not an integer; stored as" in named
        assert "derived anew from the stored original" in named
        # no original to derive it from: cleared, and said so
        assert f"item {third!r}: stored phash 'x1' was not an integer; cleared" in named
        for name in (first, third):  # every read of the collection serves
            check = c.post(f"{C}/duplicates/check", json={"image": b64(shots[name])})
            assert check.status_code == 200, check.text
            assert check.json()["findings"][0]["id"] == name
        after = c.post(f"{C}/duplicates/check", json={"image": b64(shots[first])}).json()
        assert after["findings"][0] == before.json()["findings"][0]  # the hash is back
        assert c.get(f"{C}/duplicates").status_code == 200
        assert c.get(f"{C}/items").status_code == 200
        upload = {"items": [{"id": "new", "image": b64(shots[first])}]}
        assert c.post(f"{C}/items", json=upload).status_code == 200


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
