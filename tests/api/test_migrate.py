"""Model migration through the API, between two real spaces: the bundled tiny-shapes and
tiny-shapes-b (the same recipe trained with another seed).

A re-encode must leave the collection exactly as if it had been built with the new model;
searches keep the old space until the swap, writes made meanwhile reach the new one, and a
job stopped halfway resumes. An adapter carries items without originals, and lets clients
of the old model query the new space; without one, another model's vectors are refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from tests.fixtures import (
    ADMIN_KEY,
    READ_KEY,
    assert_problem,
    b64,
    image_bytes,
    make_settings,
    pair,
    release_on_stop,
    wait_for,
)

from latentspace.api import create_app
from latentspace.embedder.models.shapes import COLOURS, SHAPES, ShapeSample, generate
from latentspace.service import migrate
from latentspace.settings import MigrateSettings, Settings
from latentspace.store.engine import make_engine
from latentspace.store.tables import JobRow

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
QUERIES: list[dict[str, Any]] = [
    {"text": "a red circle"},
    {"text": "a blue square"},
    {"text": "yellow"},
    {"item": "s5"},
    {"terms": [{"item": "s0"}, {"direction": "to-blue"}]},
]


def _items(shapes: list[ShapeSample], start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"s{start + i}",
            "image": b64(image_bytes(s.image)),
            "metadata": {"colour": s.colour, "shape": s.shape},
        }
        for i, s in enumerate(shapes)
    ]


def _collection(c: TestClient, name: str, model: str, items: list[dict[str, Any]]) -> None:
    r = c.post("/v1/collections", json={"name": name, "model": model})
    assert r.status_code == 201, r.text
    r = c.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text
    direction = {"name": "to-blue", "positive": [{"text": "blue"}], "negative": [{"text": "red"}]}
    assert c.post(f"/v1/collections/{name}/directions", json=direction).status_code == 201


def _top(c: TestClient, name: str, query: dict[str, Any], k: int = 10) -> list[tuple[str, float]]:
    r = c.post(f"/v1/collections/{name}/search", json={"query": query, "k": k})
    assert r.status_code == 200, r.text
    return [(h["id"], round(h["score"], 4)) for h in r.json()["results"]]


def _migrate(c: TestClient, name: str, **body: Any) -> dict[str, Any]:
    r = c.post(f"/v1/collections/{name}/migrate", json={"model": "tiny-shapes-b", **body})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    job = wait_for(c, r.json()["id"], timeout=120)
    assert job["state"] == "done", job
    return job


def _same_as_fresh(c: TestClient, migrated: str, fresh: str) -> None:
    # The migrated collection answers every query as one built with the new model does.
    for query in QUERIES:
        assert _top(c, migrated, query) == _top(c, fresh, query), query


@pytest.fixture(scope="module")
def shapes() -> list[ShapeSample]:
    """120 generated shapes (every colour × shape several times)."""
    return generate(120, seed=11)


def test_a_reencode_leaves_the_collection_as_if_built_with_the_new_model(
    db_client: TestClient, shapes: list[ShapeSample]
) -> None:
    c = db_client
    _collection(c, "old", "tiny-shapes", _items(shapes))
    _collection(c, "fresh", "tiny-shapes-b", _items(shapes))
    before = c.get("/v1/collections/old").json()
    assert _top(c, "old", {"text": "a red circle"}) != _top(c, "fresh", {"text": "a red circle"})
    job = _migrate(c, "old")
    result = job["params"]["result"]
    assert result["reencoded"] == 120
    assert result["adapted"] == 0
    assert result["directions_kept"] == 1
    after = c.get("/v1/collections/old").json()
    fresh = c.get("/v1/collections/fresh").json()
    assert after["model"] == "tiny-shapes-b"
    assert after["fingerprint"] == fresh["fingerprint"] != before["fingerprint"]
    assert after["count"] == 120
    _same_as_fresh(c, "old", "fresh")
    # the adapter fitted on the way is stored with the collection, with its measured recall
    adapters = c.get("/v1/collections/old/adapters").json()["adapters"]
    assert len(adapters) == 1
    assert adapters[0]["source_fingerprint"] == before["fingerprint"]
    assert adapters[0]["target_fingerprint"] == after["fingerprint"]
    assert adapters[0]["current"] is True
    assert adapters[0]["recall_at_10"] == result["recall_at_10"]
    # the collection is at home in its new space: a second migration to it is refused
    r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"})
    assert_problem(r, 409, "conflict")


def _hold_second_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    # Hold the job inside its second encode batch (the first is committed) until released.
    inside, release = threading.Event(), threading.Event()
    original, calls = migrate._Run.encode, []

    def held(self: migrate._Run, items: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            inside.set()
            assert release.wait(60)
        return original(self, items)

    monkeypatch.setattr(migrate._Run, "encode", held)
    return inside, release


def test_searches_keep_the_old_space_until_the_swap_and_writes_made_meanwhile_arrive(
    tmp_path: Path, shapes: list[ShapeSample], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, migrate=MigrateSettings(batch=40))
    more = generate(8, seed=99)
    inside, release = _hold_second_batch(monkeypatch)
    with TestClient(create_app(settings), headers=AUTH) as c:
        _collection(c, "old", "tiny-shapes", _items(shapes))
        old_answers = [_top(c, "old", q) for q in QUERIES]
        job_id = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"}).json()["id"]
        assert inside.wait(60)
        # meanwhile: the old model answers, and the collection takes writes
        assert c.get("/v1/collections/old").json()["model"] == "tiny-shapes"
        assert [_top(c, "old", q) for q in QUERIES] == old_answers
        r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"})
        assert_problem(r, 409, "conflict", "being migrated already")
        written = _items(more[:4], start=120)  # new items
        written.append({**_items(more[4:5])[0], "id": "s1"})  # s1 (encoded already) changes
        written.append({**_items(more[5:6])[0], "id": "s100"})  # s100 (not yet) changes
        assert c.post("/v1/collections/old/items", json={"items": written}).status_code == 200
        assert c.delete("/v1/collections/old/items/s2").status_code == 204
        r = c.patch("/v1/collections/old/items/s3", json={"metadata": {"note": "kept"}})
        assert r.status_code == 200, r.text
        release.set()
        job = wait_for(c, job_id, timeout=120)
        assert job["state"] == "done", job
        # the same final content, built with the new model from the start
        final = [i for i in _items(shapes) if i["id"] not in {"s1", "s2", "s100"}] + written
        _collection(c, "fresh", "tiny-shapes-b", final)
        assert c.get("/v1/collections/old").json()["count"] == 123
        _same_as_fresh(c, "old", "fresh")
        for query in ({"item": "s1"}, {"item": "s120"}, {"item": "s100"}):
            assert _top(c, "old", query) == _top(c, "fresh", query)
        assert c.get("/v1/collections/old/items/s2").status_code == 404
        assert c.get("/v1/collections/old/items/s3").json()["metadata"]["note"] == "kept"


def test_a_migration_stopped_with_the_server_resumes_where_it_was(
    tmp_path: Path, engine: Engine, shapes: list[ShapeSample], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, migrate=MigrateSettings(batch=40))
    inside, release = _hold_second_batch(monkeypatch)
    release_on_stop(monkeypatch, release)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        _collection(c, "old", "tiny-shapes", _items(shapes))
        job_id = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"}).json()["id"]
        assert inside.wait(60)
    with Session(engine) as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        assert (row.state, row.done) == ("queued", 80)  # the batch in flight was finished
    monkeypatch.undo()
    encoded: list[int] = []
    original = migrate._Run.encode

    def counting(self: migrate._Run, items: Any) -> Any:
        encoded.append(len(items))
        return original(self, items)

    monkeypatch.setattr(migrate._Run, "encode", counting)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        job = wait_for(c, job_id, timeout=120)
        assert job["state"] == "done", job
        assert sum(encoded) == 40  # only what was left
        assert c.get("/v1/collections/old").json()["model"] == "tiny-shapes-b"
        _collection(c, "fresh", "tiny-shapes-b", _items(shapes))
        _same_as_fresh(c, "old", "fresh")


def _precision(c: TestClient, name: str, query: dict[str, Any], colour: str, shape: str) -> float:
    # R-precision: the share of the first R hits that are of the colour and shape, where R
    # is how many items of that colour and shape the collection holds.
    r = c.get(f"/v1/collections/{name}/items", params={"limit": 1000})
    wanted = {"colour": colour, "shape": shape}
    relevant = sum(item["metadata"] == wanted for item in r.json()["items"])
    assert relevant > 0
    r = c.post(f"/v1/collections/{name}/search", json={"query": query, "k": relevant})
    assert r.status_code == 200, r.text
    return sum(h["metadata"] == wanted for h in r.json()["results"]) / relevant


def _mean_precision(c: TestClient, name: str, query: Callable[[str], dict[str, Any]]) -> float:
    # Mean R-precision of "a {colour} {shape}" over every colour and shape.
    return float(
        np.mean(
            [
                _precision(c, name, query(f"a {colour} {shape}"), colour, shape)
                for colour in COLOURS
                for shape in SHAPES
            ]
        )
    )


def _old_space_vectors(c: TestClient, shapes: list[ShapeSample]) -> list[dict[str, Any]]:
    # The shapes as raw-vector items of the old model's space (encoded through a scratch
    # collection of it): items that have no original to re-encode.
    _collection(c, "scratch", "tiny-shapes", _items(shapes, start=500))
    out = []
    for i, s in enumerate(shapes):
        r = c.get(f"/v1/collections/scratch/items/s{500 + i}", params={"include_vector": True})
        assert r.status_code == 200, r.text
        hit = r.json()
        out.append(
            {
                "id": f"v{i}",
                "vector": hit["vector"],
                "metadata": {"colour": s.colour, "shape": s.shape},
            }
        )
    return out


def test_an_adapter_carries_items_without_originals_into_the_new_space(
    client: TestClient,
) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(generate(160, seed=11)))
    vectors = _old_space_vectors(c, generate(64, seed=12))
    assert c.post("/v1/collections/old/items", json={"items": vectors}).status_code == 200
    r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"})
    assert_problem(r, 422, "invalid-input", "64 of 224 items", "mode 'adapter'")
    job = _migrate(c, "old", mode="adapter", sample=100)
    result = job["params"]["result"]
    assert (result["reencoded"], result["adapted"]) == (100, 124)
    assert (result["fitted_on"], result["held_out"]) == (75, 25)
    assert result["recall_at_10"] == max(result["adapter_scores"].values())
    # the new model's queries find the adapted items, the raw-vector ones among them
    only_vectors = {"id": {"$in": [v["id"] for v in vectors]}}
    for colour, shape in (("red", "circle"), ("blue", "square"), ("green", "triangle")):
        query = {"text": f"a {colour} {shape}"}
        assert _precision(c, "old", query, colour, shape) >= 0.75
        r = c.post(
            "/v1/collections/old/search",
            json={"query": query, "k": 3, "filter": only_vectors},
        )
        assert r.status_code == 200, r.text
        hits = r.json()["results"]
        assert all(h["metadata"] == {"colour": colour, "shape": shape} for h in hits), hits


def test_terms_of_another_model_need_an_adapter(
    client: TestClient, shapes: list[ShapeSample]
) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(shapes))
    old_fingerprint = c.get("/v1/collections/old").json()["fingerprint"]
    red_circle = {"text": "a red circle", "model": "tiny-shapes-b"}
    r = c.post("/v1/collections/old/search", json={"query": red_circle})
    assert_problem(r, 409, "model-mismatch")
    assert "no adapter" in r.json()["detail"]
    # naming the collection's own model changes nothing
    own = {"text": "a red circle", "model": old_fingerprint}
    assert _top(c, "old", own) == _top(c, "old", {"text": "a red circle"})
    _migrate(c, "old")
    # the old model's queries now reach the new space through the adapter, about as well
    # as the new model's own; read as the new space's without it, they find nothing
    new = _mean_precision(c, "old", lambda text: {"text": text})
    adapted = _mean_precision(c, "old", lambda text: {"text": text, "model": "tiny-shapes"})

    def old_vector(text: str) -> list[float]:
        r = c.post("/v1/embeddings", json={"model": "tiny-shapes", "input": text})
        vector: list[float] = r.json()["data"][0]["embedding"]
        return vector

    unmapped = _mean_precision(c, "old", lambda text: {"vector": old_vector(text)})
    assert new >= 0.9
    assert adapted >= 0.9 * new
    assert unmapped <= 0.2
    # a vector of the old space, named by its model's fingerprint, is the same query
    vector = old_vector("a blue square")
    by_vector = {"vector": vector, "model": old_fingerprint}
    assert _top(c, "old", by_vector) == _top(
        c, "old", {"text": "a blue square", "model": "tiny-shapes"}
    )
    bad = {
        "an item with a model": ({"item": "s0", "model": "tiny-shapes"}, 422, "invalid-input"),
        "a model with no adapter": ({"text": "red", "model": "f" * 64}, 409, "model-mismatch"),
        "a vector of another dim": (
            {"vector": [0.1] * 8, "model": "tiny-shapes"},
            422,
            "dimension-mismatch",
        ),
        "an unknown scheme": ({"text": "red", "model": "nope:x"}, 409, "model-mismatch"),
    }
    for label, (term, status, kind) in bad.items():
        r = c.post("/v1/collections/old/search", json={"query": term})
        assert_problem(r, status, kind), label


BAD: dict[str, tuple[str, dict[str, Any], int, str]] = {
    "no such collection": ("ghost", {"model": "tiny-shapes-b"}, 404, "not-found"),
    "the model it uses": ("old", {"model": "tiny-shapes"}, 409, "conflict"),
    "an unknown scheme": ("old", {"model": "nope:x"}, 422, "invalid-input"),
    "no model": ("old", {}, 422, "validation-error"),
    "an unknown mode": ("old", {"model": "tiny-shapes-b", "mode": "x"}, 422, "validation-error"),
    "a tiny sample": ("old", {"model": "tiny-shapes-b", "sample": 3}, 422, "validation-error"),
    "adapter mode without an adapter": (
        "old",
        {"model": "tiny-shapes-b", "mode": "adapter", "adapter": None},
        422,
        "invalid-input",
    ),
    "a raw-vector collection": ("raw", {"model": "tiny-shapes-b"}, 422, "invalid-input"),
    "an unknown field": ("old", {"model": "tiny-shapes-b", "x": 1}, 422, "validation-error"),
}


@pytest.mark.parametrize(("name", "body", "status", "kind"), list(BAD.values()), ids=list(BAD))
def test_a_migration_that_cannot_run_is_refused_at_once(
    client: TestClient, name: str, body: dict[str, Any], status: int, kind: str
) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(generate(30, seed=3)))
    assert c.post("/v1/collections", json={"name": "raw", "dim": 4}).status_code == 201
    r = c.post(f"/v1/collections/{name}/migrate", json=body)
    assert_problem(r, status, kind)
    assert c.get("/v1/collections/old").json()["model"] == "tiny-shapes"
    assert c.get("/v1/collections/old/jobs").json()["jobs"] == []


def test_too_few_originals_for_an_adapter_and_read_keys_are_refused(client: TestClient) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(generate(10, seed=3)))
    r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b", "mode": "adapter"})
    assert_problem(r, 422, "invalid-input")
    assert "at least 24" in r.json()["detail"]
    reader = {"Authorization": f"Bearer {READ_KEY}"}
    r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b"}, headers=reader)
    assert_problem(r, 403, "forbidden")
    assert c.get("/v1/collections/old/adapters", headers=reader).json() == {"adapters": []}


@pytest.fixture
def polling(tmp_path: Path, engine: Engine) -> Iterator[tuple[TestClient, TestClient]]:
    """Two hosts on one database, polling every 50 ms."""
    yield from pair(tmp_path, engine, shared_dir=False, poll_ms=50)


def test_another_server_moves_to_the_new_space_and_writes_there(
    polling: tuple[TestClient, TestClient], shapes: list[ShapeSample]
) -> None:
    a, b = polling
    _collection(a, "old", "tiny-shapes", _items(shapes[:60]))
    before = _top(b, "old", {"text": "a red circle"})
    _migrate(a, "old")
    deadline = 20.0
    started = time.monotonic()
    while _top(b, "old", {"text": "a red circle"}) == before:
        assert time.monotonic() - started < deadline, "b never left the old space"
        time.sleep(0.05)
    assert b.get("/v1/collections/old").json()["model"] == "tiny-shapes-b"
    for query in QUERIES[:4]:
        assert _top(b, "old", query) == _top(a, "old", query)
    r = b.post("/v1/collections/old/items", json={"items": _items(shapes[60:62], start=60)})
    assert r.status_code == 200, r.text
    seq = r.json()["seq"]
    r = b.get("/v1/collections/old/items/s60", params={"include_vector": True})
    query = {"query": {"vector": r.json()["vector"]}, "k": 5, "consistency": {"min_seq": seq}}
    r = a.post("/v1/collections/old/search", json=query)
    assert r.status_code == 200, r.text
    assert ["s60", 1.0] in [[h["id"], round(h["score"], 4)] for h in r.json()["results"]]
    np.testing.assert_allclose(
        [s for _, s in _top(a, "old", {"item": "s61"})],
        [s for _, s in _top(b, "old", {"item": "s61"})],
        atol=1e-4,
    )


@pytest.fixture
def still(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two servers on one SQLite database whose followers never poll on their own (on
    PostgreSQL a write's NOTIFY would wake them at once)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    yield from pair(tmp_path, engine, shared_dir=False, poll_ms=3_600_000)
    engine.dispose()


def test_a_write_prepared_in_the_old_space_is_refused_after_the_swap(
    still: tuple[TestClient, TestClient], shapes: list[ShapeSample]
) -> None:
    a, b = still
    _collection(a, "old", "tiny-shapes", _items(shapes[:30]))
    assert b.get("/v1/collections/old").json()["model"] == "tiny-shapes"
    _top(b, "old", {"text": "a red circle"})  # b holds the old row and index
    _migrate(a, "old")
    # b has not polled: it would encode with the old model, and the write is refused
    r = b.post("/v1/collections/old/items", json={"items": _items(shapes[30:32], start=30)})
    assert_problem(r, 409, "conflict", "moved to another model", "retry")
    assert a.get("/v1/collections/old").json()["count"] == 30
    assert a.get("/v1/collections/old/items/s30").status_code == 404


def test_a_retrained_model_redraws_the_map(client: TestClient, shapes: list[ShapeSample]) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(shapes))
    r = c.post("/v1/collections/old/map", json={"method": "pca"})
    assert wait_for(c, r.json()["id"], timeout=120)["state"] == "done"
    before = c.get("/v1/collections/old/map").json()
    _migrate(c, "old")
    jobs = c.get("/v1/collections/old/jobs").json()["jobs"]
    refit = [j for j in jobs if j["kind"] == "map" and j["id"] > r.json()["id"]]
    assert len(refit) == 1  # queued by the swap, with the method the map had
    assert wait_for(c, refit[0]["id"], timeout=120)["state"] == "done"
    after = c.get("/v1/collections/old/map").json()
    assert after["method"] == "pca"
    assert after["fitted_seq"] > before["fitted_seq"]
    assert sorted(after["ids"]) == sorted(before["ids"])
    # the points are the new space's projection: a fresh tiny-shapes-b map draws the same
    _collection(c, "fresh", "tiny-shapes-b", _items(shapes))
    r = c.post("/v1/collections/fresh/map", json={"method": "pca"})
    assert wait_for(c, r.json()["id"], timeout=120)["state"] == "done"
    fresh = c.get("/v1/collections/fresh/map").json()
    mine = dict(zip(after["ids"], zip(after["x"], after["y"], strict=True), strict=True))
    theirs = dict(zip(fresh["ids"], zip(fresh["x"], fresh["y"], strict=True), strict=True))
    assert np.allclose(
        [mine[i] for i in sorted(mine)], [theirs[i] for i in sorted(mine)], atol=1e-3
    )
    assert not np.allclose(
        [mine[i] for i in sorted(mine)],
        [
            dict(zip(before["ids"], zip(before["x"], before["y"], strict=True), strict=True))[i]
            for i in sorted(mine)
        ],
        atol=1e-2,
    )


def test_a_snapshot_carries_the_adapters(client: TestClient, shapes: list[ShapeSample]) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(shapes))
    _migrate(c, "old")
    r = c.post("/v1/collections/old/snapshot")
    assert r.status_code == 200, r.text
    tar = {"Content-Type": "application/x-tar"}
    r = c.post("/v1/collections/copy/restore", content=r.content, headers=tar)
    assert r.status_code == 201, r.text
    adapters = c.get("/v1/collections/old/adapters").json()["adapters"]
    assert c.get("/v1/collections/copy/adapters").json()["adapters"] == adapters
    through = {"text": "a red circle", "model": "tiny-shapes"}
    assert _top(c, "copy", through) == _top(c, "old", through)


def test_an_unreadable_stored_vector_fails_the_swap_and_changes_nothing(
    client: TestClient, settings: Settings
) -> None:
    c = client
    _collection(c, "old", "tiny-shapes", _items(generate(40, seed=11)))
    vectors = _old_space_vectors(c, generate(10, seed=12))
    assert c.post("/v1/collections/old/items", json={"items": vectors}).status_code == 200
    engine = make_engine(settings.resolved_database_url())
    with engine.begin() as conn:  # a vector cut short on disk: it cannot be carried over
        conn.execute(
            text(
                "UPDATE item_vectors SET vector = :blob WHERE item_id = (SELECT i.id FROM items i"
                " JOIN collections c ON c.id = i.collection_id"
                " WHERE c.name = 'old' AND i.external_id = 'v3')"
            ),
            {"blob": b"\x00" * 8},
        )
    engine.dispose()
    r = c.post("/v1/collections/old/migrate", json={"model": "tiny-shapes-b", "mode": "adapter"})
    assert r.status_code == 202, r.text
    job = wait_for(c, r.json()["id"], timeout=120)
    assert job["state"] == "failed"
    assert "no readable stored vector" in job["error"]
    after = c.get("/v1/collections/old").json()
    assert (after["model"], after["count"]) == ("tiny-shapes", 50)
    assert c.get("/v1/collections/old/adapters").json() == {"adapters": []}
    assert _precision(c, "old", {"text": "a red circle"}, "red", "circle") > 0
