"""Any count for every index kind; one collection's broken index never stops the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.settings import Settings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DIM = 16


def vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def server(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), headers=AUTH)


def upsert(client: TestClient, name: str, x: np.ndarray, start: int = 0) -> None:
    items = [{"id": f"v{start + i}", "vector": v.tolist()} for i, v in enumerate(x)]
    r = client.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text


def nearest(client: TestClient, name: str, v: np.ndarray) -> str:
    r = client.post(f"/v1/collections/{name}/search", json={"query": {"vector": v.tolist()}})
    assert r.status_code == 200, r.text
    found: str = r.json()["results"][0]["id"]
    return found


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_every_kind_takes_any_count_and_survives_restarts(tmp_path: Path, kind: str) -> None:
    settings = make_settings(tmp_path)
    small, more = vectors(100, seed=1), vectors(300, seed=2)
    with server(settings) as client:
        r = client.post("/v1/collections", json={"name": "c", "dim": DIM, "index": kind})
        assert r.status_code == 201, r.text
        upsert(client, "c", small[:1])  # one item
        upsert(client, "c", small[1:], start=1)  # 100 in all: below IVF-PQ's 256 training points
        assert nearest(client, "c", small[42]) == "v42"
    with server(settings) as client:  # restarts: loads, replays or rebuilds, never fails
        assert client.get("/readyz").json()["status"] == "ok"
        assert nearest(client, "c", small[7]) == "v7"
        upsert(client, "c", more, start=100)  # 400: enough to train every kind
        stats = client.post("/v1/collections/c/flush").json()  # waits for the rebuild
        assert stats["count"] == 400
        assert stats["index"]["kind"] == kind  # trained, once there was enough
        assert nearest(client, "c", more[5]) == "v105"
    with server(settings) as client:
        assert client.get("/v1/collections/c").json()["index"]["kind"] == kind
        assert nearest(client, "c", small[99]) == "v99"


def test_a_collection_that_cannot_serve_is_503_and_the_others_serve(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with server(settings) as client:
        for name in ("good", "bad"):
            r = client.post("/v1/collections", json={"name": name, "dim": DIM})
            assert r.status_code == 201, r.text
            upsert(client, name, vectors(20, seed=3))
    # No index on disk, and a collection row no index can be built for (a metric this
    # version does not know): nothing to serve "bad" from, neither its files nor SQL.
    for path in (tmp_path / "indexes").iterdir():
        for f in path.iterdir():
            f.unlink()
    engine = create_engine(settings.resolved_database_url())
    with engine.begin() as connection:
        connection.execute(text("UPDATE collections SET metric = 'bogus' WHERE name = 'bad'"))
    engine.dispose()
    with server(settings) as client:  # start-up does not fail
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert list(ready.json()["unavailable"]) == ["bad"]
        for method, path, body in [
            ("GET", "/v1/collections/bad", None),
            ("POST", "/v1/collections/bad/search", {"query": {"vector": [1.0] * DIM}}),
        ]:
            r = client.request(method, path, json=body)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "/problems/unavailable"
            assert "cannot serve" in r.json()["detail"]
        assert nearest(client, "good", vectors(20, seed=3)[4]) == "v4"  # the others serve
        listed = {
            c["name"]: c["index"] for c in client.get("/v1/collections").json()["collections"]
        }
        assert listed["good"]["kind"] == "flat"
        assert listed["bad"]["kind"] == "unavailable"
        assert "cannot serve" in listed["bad"]["unavailable"]
        assert client.get("/metrics").status_code == 200


def test_a_failed_index_step_never_loses_committed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentspace.index import ManagedIndex

    x = vectors(30, seed=5)
    with server(make_settings(tmp_path)) as client:
        r = client.post("/v1/collections", json={"name": "c", "dim": DIM, "index": "hnsw"})
        assert r.status_code == 201, r.text
        upsert(client, "c", x[:20])
        calls = {"n": 0}
        real_add = ManagedIndex.add

        def failing_once(self: ManagedIndex, ids: np.ndarray, vecs: np.ndarray) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("injected: the index step failed after the commit")
            real_add(self, ids, vecs)

        monkeypatch.setattr(ManagedIndex, "add", failing_once)
        upsert(client, "c", x[20:], start=20)  # committed, then the index step fails
        assert calls["n"] == 1
        stats = client.get("/v1/collections/c").json()
        assert stats["count"] == 30
        assert nearest(client, "c", x[25]) == "v25"  # served from SQL, exactly
        upsert(client, "c", vectors(1, seed=6), start=30)  # later writes still apply
        assert nearest(client, "c", vectors(1, seed=6)[0]) == "v30"


def test_models_that_cannot_load_are_4xx_and_named_by_readyz(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with server(make_settings(tmp_path / "data")) as client:
        for spec in (f"st:{empty}", f"openclip:{empty}", "st:/no/such/dir", "nope:x"):
            r = client.post("/v1/collections", json={"name": "m", "model": spec})
            assert r.status_code == 422, (spec, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        r = client.post("/v1/collections", json={"name": "m"})  # neither model nor dim
        assert r.status_code == 422, r.text
        schema = client.get("/openapi.json").json()["components"]["schemas"]["CollectionCreate"]
        assert schema["anyOf"] == [{"required": ["model"]}, {"required": ["dim"]}]


def test_a_relative_model_path_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, static_st_dir: str
) -> None:
    monkeypatch.chdir(Path(static_st_dir).parent)
    relative = f"st:./{Path(static_st_dir).name}"
    settings = make_settings(tmp_path / "data")
    with server(settings) as client:
        r = client.post("/v1/collections", json={"name": "rel", "model": relative})
        assert r.status_code == 201, r.text
        assert r.json()["model"] == f"st:{Path(static_st_dir).resolve()}"
    monkeypatch.chdir(tmp_path)  # a restart from another directory still loads it
    with server(settings) as client:
        assert client.get("/readyz").json()["status"] == "ok"
        r = client.post("/v1/collections/rel/items", json={"items": [{"text": "red fox"}]})
        assert r.status_code == 200, r.text


def test_readyz_names_a_collection_whose_model_cannot_load(
    tmp_path: Path, static_st_dir: str
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(static_st_dir, model)
    settings = make_settings(tmp_path / "data")
    with server(settings) as client:
        assert client.post("/v1/collections", json={"name": "s", "model": f"st:{model}"}).is_success
    shutil.rmtree(model)  # the weights are gone
    with server(settings) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert "cannot be loaded" in ready["unavailable"]["s"]
        r = client.post("/v1/collections/s/search", json={"query": {"text": "fox"}})
        assert r.status_code == 422, r.text  # the weights are gone: a clear problem, no 500
        assert r.json()["type"] == "/problems/model-unavailable"


def test_the_pixel_limit_cannot_be_set_past_pillows_own_guard() -> None:
    from PIL import Image
    from pydantic import ValidationError

    from latentspace.settings import PILLOW_PIXEL_GUARD, LimitSettings

    assert PILLOW_PIXEL_GUARD == 2 * Image.MAX_IMAGE_PIXELS  # the guard Pillow enforces
    with pytest.raises(ValidationError, match="less than or equal"):
        LimitSettings(max_image_pixels=PILLOW_PIXEL_GUARD + 1)


def test_an_oversized_upload_is_reported_with_its_real_size(tmp_path: Path) -> None:
    from latentspace.settings import LimitSettings

    settings = make_settings(tmp_path, limits=LimitSettings(max_image_bytes=2000))
    data = b"\x89PNG" + bytes(4996)
    with server(settings) as client:
        assert client.post("/v1/collections", json={"name": "i", "model": "tiny-shapes"}).is_success
        for route in ("images", "search/image"):
            field = "files" if route == "images" else "file"
            r = client.post(f"/v1/collections/i/{route}", files=[(field, ("big.png", data))])
            assert r.status_code == 413, r.text
            assert "big.png: 5000 bytes, over the limit of 2000" in r.json()["detail"]


def test_documents_none_of_which_was_stored_are_not_a_200(tmp_path: Path) -> None:
    with server(make_settings(tmp_path)) as client:
        assert client.post("/v1/collections", json={"name": "d", "model": "tiny-shapes"}).is_success
        body = {"documents": [{"id": "a", "text": "  "}, {"id": "b", "text": ""}]}  # no text
        r = client.post("/v1/collections/d/documents", json=body)
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["detail"].startswith("no document was stored; first error:")
        assert [(e["id"], e["status"]) for e in problem["errors"]] == [
            ("a", "error"),
            ("b", "error"),
        ]
        assert client.get("/v1/collections/d").json()["count"] == 0
        body["documents"].append({"id": "c", "text": "a red circle"})
        r = client.post("/v1/collections/d/documents", json=body)  # one stored: 200, per part
        assert r.status_code == 200, r.text
        assert [d["status"] for d in r.json()["documents"]] == ["error", "error", "ok"]


def test_a_wrong_method_is_405_with_allow(tmp_path: Path) -> None:
    with server(make_settings(tmp_path)) as client:
        for method, path, allowed in [
            ("PUT", "/v1/collections", {"GET", "POST"}),
            ("DELETE", "/healthz", {"GET"}),
        ]:
            r = client.request(method, path)
            assert r.status_code == 405, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert set(r.headers["allow"].replace(" ", "").split(",")) == allowed


@pytest.mark.parametrize("fault", ["file-for-folder", "garbage-manifest", "folder-for-manifest"])
def test_a_broken_index_folder_is_rebuilt_into_a_fresh_one(tmp_path: Path, fault: str) -> None:
    settings = make_settings(tmp_path)
    x = vectors(30, seed=8)
    with server(settings) as client:
        assert client.post("/v1/collections", json={"name": "c", "dim": DIM}).is_success
        upsert(client, "c", x)
    (folder,) = [p for p in (tmp_path / "indexes").iterdir() if p.is_dir()]
    manifest = folder / "manifest.json"
    if fault == "file-for-folder":
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        folder.write_bytes(b"not a folder")
    elif fault == "garbage-manifest":
        manifest.write_bytes(b"\x00\xff garbage")
    else:
        manifest.unlink()
        manifest.mkdir()
    with server(settings) as client:  # starts, serves from a fresh index, saves it
        assert client.get("/readyz").json()["status"] == "ok"
        assert nearest(client, "c", x[3]) == "v3"
        assert client.post("/v1/collections/c/flush").status_code == 200
    with server(settings) as client:  # and that index loads next time
        assert nearest(client, "c", x[11]) == "v11"
    if fault == "file-for-folder":
        assert list((tmp_path / "indexes").glob(f"{folder.name}.unusable-*"))  # kept aside


def test_a_database_that_is_not_this_data_directorys_is_said(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with server(settings) as client:
        assert client.post("/v1/collections", json={"name": "c", "dim": DIM}).is_success
        upsert(client, "c", vectors(5, seed=9))
    (tmp_path / "latentspace.db").write_bytes(b"")  # a zero-length database file
    for sidecar in tmp_path.glob("latentspace.db-*"):
        sidecar.unlink()
    with server(settings) as client:  # an empty service would answer: it is not ready
        answer = client.get("/readyz")
        assert answer.status_code == 503
        ready = answer.json()
        assert ready["status"] == "unavailable"
        assert "belong to no collection" in ready["detail"]
        assert "LATENTSPACE_DATABASE_URL" in ready["detail"]
    shutil.move(tmp_path / "indexes", tmp_path.parent / "set-aside")
    with server(settings) as client:  # once they are moved away, it starts afresh
        assert client.get("/readyz").json()["status"] == "ok"


def test_a_stored_vector_with_a_flipped_byte_is_never_served(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    x = vectors(10, seed=12)
    with server(settings) as client:
        assert client.post("/v1/collections", json={"name": "c", "dim": DIM}).is_success
        upsert(client, "c", x)
    engine = create_engine(settings.resolved_database_url())
    with engine.begin() as connection:
        item_id, blob = connection.execute(
            text(
                "SELECT v.item_id, v.vector FROM item_vectors v JOIN items i ON i.id = v.item_id "
                "WHERE i.external_id = 'v3'"
            )
        ).one()
        flipped = bytes([blob[0] ^ 0x01]) + blob[1:]
        connection.execute(
            text("UPDATE item_vectors SET vector = :v WHERE item_id = :i"),
            {"v": flipped, "i": item_id},
        )
    engine.dispose()
    for f in next((tmp_path / "indexes").iterdir()).iterdir():
        f.unlink()  # the restart rebuilds from SQL
    with server(settings) as client:
        r = client.post("/v1/collections/c/search", json={"query": {"item": "v3"}})
        assert r.status_code == 503, r.text
        assert r.json()["type"] == "/problems/corrupt-vector"
        r = client.get("/v1/collections/c/items/v3", params={"include_vector": "true"})
        assert r.status_code == 503, r.text
        assert nearest(client, "c", x[5]) == "v5"  # the rest serves; v3 was left out
        assert client.get("/v1/collections/c").json()["index"]["kind"] == "flat"
        ids = {
            h["id"]
            for h in client.post(
                "/v1/collections/c/search", json={"query": {"vector": x[3].tolist()}, "k": 10}
            ).json()["results"]
        }
        assert "v3" not in ids
