"""Stored originals are checked against their sha256 before they are used.

An image's file under ``data_dir/blobs`` that no longer holds the bytes of its sha256
(swapped for another picture, overwritten with garbage, cut short) is never served and
never re-encoded by a migration: it answers a 404 problem saying so and how to repair it,
``/readyz`` names it under ``damaged``, and uploading the image again repairs it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import assert_problem, b64, image_bytes, wait_for

from latentspace.embedder.models.shapes import ShapeSample, generate
from latentspace.service.intake import DamagedOriginal, blob_path, read_blob, write_blob
from latentspace.settings import Settings


def _blob(settings: Settings, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return Path(settings.data_dir) / "blobs" / sha[:2] / sha


def _items(shapes: list[ShapeSample]) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "image": b64(image_bytes(s.image))} for i, s in enumerate(shapes)]


def _collection(c: TestClient, name: str, model: str, shapes: list[ShapeSample]) -> None:
    r = c.post("/v1/collections", json={"name": name, "model": model})
    assert r.status_code == 201, r.text
    r = c.post(f"/v1/collections/{name}/items", json={"items": _items(shapes)})
    assert r.status_code == 200, r.text


def _damaged(c: TestClient) -> dict[str, list[str]]:
    ready = c.get("/readyz").json()
    damaged: dict[str, list[str]] = ready.get("damaged", {})
    assert (ready["status"] == "ok") == (not damaged), ready
    return damaged


def _stored_then_damaged(
    c: TestClient, settings: Settings, image: bytes, damage: bytes
) -> list[dict[str, Any]]:
    """Collection "pics" holding ``image`` as item "a", whose stored original then holds
    ``damage`` (a 404 already, named by /readyz); the items sent."""
    r = c.post("/v1/collections", json={"name": "pics", "model": "tiny-shapes"})
    assert r.status_code == 201, r.text
    items = [{"id": "a", "image": b64(image)}]
    assert c.post("/v1/collections/pics/items", json={"items": items}).status_code == 200
    _blob(settings, image).write_bytes(damage)
    assert c.get("/v1/collections/pics/items/a/image").status_code == 404
    assert "pics" in _damaged(c)
    return items


@pytest.fixture
def pictures() -> list[bytes]:
    """Two different tiny-shapes PNGs."""
    return [image_bytes(s.image) for s in generate(2, seed=7)]


DAMAGE = {
    "swapped": lambda other: other,  # another picture's bytes
    "garbage": lambda other: b"\x00not an image\xff" * 8,
    "cut short": lambda other: b"",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_original_is_never_served_and_readyz_names_it(
    client: TestClient, settings: Settings, pictures: list[bytes], damage: str
) -> None:
    c = client
    mine, other = pictures
    r = c.post("/v1/collections", json={"name": "pics", "model": "tiny-shapes"})
    assert r.status_code == 201, r.text
    items = [{"id": "a", "image": b64(mine)}, {"id": "b", "image": b64(other)}]
    assert c.post("/v1/collections/pics/items", json={"items": items}).status_code == 200
    assert c.get("/v1/collections/pics/items/a/image").content == mine
    assert _damaged(c) == {}
    _blob(settings, mine).write_bytes(DAMAGE[damage](other))
    r = c.get("/v1/collections/pics/items/a/image")
    assert_problem(r, 404, "not-found", "item 'a'", "no longer matches its sha256", "upload")
    assert r.content != other
    lines = _damaged(c)["pics"]
    assert len(lines) == 1
    # "item <id> original: item 'a': the stored original (sha256 …) no longer matches …"
    assert " original: item 'a': " in lines[0], lines
    assert "no longer matches its sha256" in lines[0], lines
    assert "upload the image again" in lines[0], lines
    # the other item, and the item's other fields, are served as before
    assert c.get("/v1/collections/pics/items/b/image").content == other
    assert c.get("/v1/collections/pics/items/a").status_code == 200


def test_uploading_the_image_again_repairs_it(
    client: TestClient, settings: Settings, pictures: list[bytes]
) -> None:
    c = client
    mine, other = pictures
    items = _stored_then_damaged(c, settings, mine, other)
    r = c.post("/v1/collections/pics/items", json={"items": items})  # the same content
    assert r.status_code == 200, r.text
    assert _blob(settings, mine).read_bytes() == mine
    r = c.get("/v1/collections/pics/items/a/image")
    assert r.status_code == 200
    assert r.content == mine
    assert _damaged(c) == {}


def test_deleting_an_item_takes_the_damage_of_its_original_with_it(
    client: TestClient, settings: Settings, pictures: list[bytes]
) -> None:
    c = client
    mine, _ = pictures
    _stored_then_damaged(c, settings, mine, b"garbage")
    assert c.delete("/v1/collections/pics/items/a").status_code == 204
    assert _damaged(c) == {}


def _vector(c: TestClient, name: str, item: str) -> np.ndarray:
    r = c.get(f"/v1/collections/{name}/items/{item}", params={"include_vector": True})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["vector"], dtype=np.float32)


def _migrate(c: TestClient, name: str, **body: Any) -> dict[str, Any]:
    r = c.post(f"/v1/collections/{name}/migrate", json={"model": "tiny-shapes-b", **body})
    assert r.status_code == 202, r.text
    return wait_for(c, r.json()["id"], timeout=120)


def test_a_migration_does_not_reencode_a_swapped_original(
    client: TestClient, settings: Settings
) -> None:
    # s0's file holds s1's picture: the re-encode leaves it out, as an item without an
    # original, and the adapter fitted on the way carries its stored vector instead
    c = client
    shapes = generate(30, seed=3)
    assert shapes[0].shape != shapes[1].shape or shapes[0].colour != shapes[1].colour
    _collection(c, "old", "tiny-shapes", shapes)
    _collection(c, "fresh", "tiny-shapes-b", shapes)
    _blob(settings, image_bytes(shapes[0].image)).write_bytes(image_bytes(shapes[1].image))
    job = _migrate(c, "old")
    assert job["state"] == "done", job
    result = job["params"]["result"]
    assert (result["reencoded"], result["adapted"]) == (29, 1)
    assert c.get("/v1/collections/old").json()["model"] == "tiny-shapes-b"
    wrong = _vector(c, "fresh", "s1")  # what encoding the swapped file gives
    assert not np.allclose(_vector(c, "old", "s0"), wrong, atol=1e-4)
    np.testing.assert_allclose(_vector(c, "old", "s1"), wrong, atol=1e-5)
    lines = _damaged(c)["old"]
    assert len(lines) == 1
    assert "no longer matches its sha256" in lines[0], lines


def test_a_reencode_without_an_adapter_fails_on_a_damaged_original_and_changes_nothing(
    client: TestClient, settings: Settings
) -> None:
    c = client
    shapes = generate(30, seed=3)
    _collection(c, "old", "tiny-shapes", shapes)
    before = _vector(c, "old", "s0")
    _blob(settings, image_bytes(shapes[0].image)).write_bytes(b"\x89PNG garbage")
    job = _migrate(c, "old", adapter=None)
    assert job["state"] == "failed", job
    assert "no longer matches its sha256" in job["error"], job
    assert c.get("/v1/collections/old").json()["model"] == "tiny-shapes"
    np.testing.assert_allclose(_vector(c, "old", "s0"), before)
    assert "old" in _damaged(c)


def test_read_blob_checks_the_bytes_and_write_blob_rewrites_a_damaged_file(
    tmp_path: Path, pictures: list[bytes]
) -> None:
    mine, other = pictures
    sha = hashlib.sha256(mine).hexdigest()
    assert read_blob(tmp_path, sha) is None  # none stored
    assert write_blob(tmp_path, sha, mine) is True
    assert write_blob(tmp_path, sha, mine) is False  # intact: left as it is
    assert read_blob(tmp_path, sha) == mine
    blob_path(tmp_path, sha).write_bytes(other)
    with pytest.raises(DamagedOriginal, match="no longer matches its sha256"):
        read_blob(tmp_path, sha)
    assert write_blob(tmp_path, sha, mine) is True  # damaged: written again
    assert read_blob(tmp_path, sha) == mine
