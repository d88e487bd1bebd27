"""Auto-tagging as a background job through the API: the labels it writes are what a
filter finds, a cancel stops it between batches, a job a crash left running resumes from
its cursor on the next start, and a job that could not run is refused when it is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from tests.fixtures import (
    ADMIN_KEY,
    READ_KEY,
    b64,
    image_bytes,
    make_settings,
    release_on_stop,
    wait_for,
)

from latentspace.api import create_app
from latentspace.embedder.models.shapes import COLOURS, ShapeSample
from latentspace.service import autotag
from latentspace.settings import ClassifySettings
from latentspace.store.tables import CollectionRow, ItemRow, JobRow

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TAG = "/v1/collections/shapes/autotag"
TEMPLATES = ["a photo of a {}.", "a picture of a {}.", "an image of a {}."]


def add_shapes(c: TestClient, shapes: list[ShapeSample]) -> None:
    """A tiny-shapes collection ``shapes`` holding the shapes (ids s0…, true colour in
    metadata ``colour``)."""
    assert c.post("/v1/collections", json={"name": "shapes", "model": "tiny-shapes"}).is_success
    items = [
        {"id": f"s{i}", "image": b64(image_bytes(s.image)), "metadata": {"colour": s.colour}}
        for i, s in enumerate(shapes)
    ]
    assert c.post("/v1/collections/shapes/items", json={"items": items}).is_success


def all_items(c: TestClient) -> dict[str, dict[str, Any]]:
    """Every item's metadata by id."""
    r = c.get("/v1/collections/shapes/items", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {item["id"]: item["metadata"] for item in r.json()["items"]}


def test_autotag_writes_labels_that_a_filter_finds(
    db_client: TestClient, shapes: list[ShapeSample]
) -> None:
    c = db_client
    add_shapes(c, shapes)
    r = c.post(TAG, json={"labels": list(COLOURS), "probability_field": "label_p"})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    assert r.json()["total"] == len(shapes)
    job = wait_for(c, r.json()["id"])
    assert job["state"] == "done", job
    assert job["done"] == job["total"] == len(shapes)
    assert job["error"] is None
    tagged = all_items(c)
    assert all(0.0 < m["label_p"] <= 1.0 for m in tagged.values())
    correct = sum(m["label"] == m["colour"] for m in tagged.values())
    assert correct / len(tagged) >= 0.9
    for colour in COLOURS:
        body = {"query": {"text": "a shape"}, "k": 1000, "filter": {"label": colour}}
        hits = c.post("/v1/collections/shapes/search", json=body).json()["results"]
        assert hits, colour
        assert {h["metadata"]["label"] for h in hits} == {colour}
        assert {h["id"] for h in hits} == {i for i, m in tagged.items() if m["label"] == colour}
        assert sum(h["metadata"]["colour"] == colour for h in hits) / len(hits) >= 0.9
    listed = c.get("/v1/collections/shapes/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_min_probability_leaves_uncertain_items_alone(
    client: TestClient, shapes: list[ShapeSample]
) -> None:
    add_shapes(client, shapes[:40])
    # at temperature 1 the softmax over cosines is nearly uniform: no label reaches 0.5
    body = {"labels": list(COLOURS), "temperature": 1.0, "min_probability": 0.5, "field": "tag"}
    job = wait_for(client, client.post(TAG, json=body).json()["id"])
    assert job["state"] == "done"
    assert job["done"] == 40
    assert all("tag" not in m for m in all_items(client).values())


@pytest.fixture
def small_batches(tmp_path: Path) -> Iterator[TestClient]:
    """A server whose auto-tag jobs tag 10 items per transaction."""
    settings = make_settings(tmp_path, classify=ClassifySettings(job_batch=10))
    with TestClient(create_app(settings), headers=AUTH) as c:
        yield c


def test_a_cancelled_job_stops_before_its_next_batch(
    small_batches: TestClient, shapes: list[ShapeSample], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = small_batches
    add_shapes(c, shapes[:60])
    # Hold the job inside its second batch (the first is committed) until it is cancelled.
    inside, release = threading.Event(), threading.Event()
    original, calls = autotag._tag, []

    def held(*args: Any) -> list[int]:
        calls.append(1)
        if len(calls) == 2:
            inside.set()
            assert release.wait(30)
        return original(*args)

    monkeypatch.setattr(autotag, "_tag", held)
    job_id = c.post(TAG, json={"labels": list(COLOURS)}).json()["id"]
    assert inside.wait(30)
    r = c.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    release.set()
    job = wait_for(c, job_id)
    assert job["state"] == "cancelled"
    assert job["done"] == 10  # the batch in flight was rolled back
    labelled = [i for i, m in all_items(c).items() if "label" in m]
    assert sorted(labelled, key=lambda i: int(i[1:])) == [f"s{i}" for i in range(10)]
    assert len(calls) == 2
    # cancelling again changes nothing; a finished job cannot be cancelled
    assert c.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "cancelled"
    monkeypatch.setattr(autotag, "_tag", original)
    done_id = c.post(TAG, json={"labels": ["red", "blue"], "field": "rb"}).json()["id"]
    assert wait_for(c, done_id)["state"] == "done"
    r = c.post(f"/v1/jobs/{done_id}/cancel")
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "already done" in r.json()["detail"]


def _insert_job(engine: Engine, state: str, cursor_at: int, params: dict[str, Any]) -> int:
    # What a server that died mid-job leaves behind: a row still "running" (or queued),
    # with the items up to its cursor done.
    with Session(engine) as session, session.begin():
        collection = session.scalars(select(CollectionRow)).one()
        ids = list(session.scalars(select(ItemRow.id).order_by(ItemRow.id)))
        job = JobRow(
            collection_id=collection.id,
            kind="autotag",
            params=params,
            state=state,
            done=cursor_at,
            total=len(ids),
            cursor=ids[cursor_at - 1],
        )
        session.add(job)
        session.flush()
        return job.id


def _params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "labels": [{"label": c, "direction": None} for c in COLOURS],
        "templates": TEMPLATES,
        "temperature": 0.01,
        "field": "label",
        "min_probability": None,
        "probability_field": None,
    }
    return {**params, **overrides}


def test_a_job_a_crash_left_running_resumes_from_its_cursor(
    tmp_path: Path, engine: Engine, shapes: list[ShapeSample]
) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        add_shapes(c, shapes[:100])
    job_id = _insert_job(engine, "running", 40, _params())
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        job = wait_for(c, job_id)
        assert job["state"] == "done", job
        assert job["done"] == job["total"] == 100
        metadata = all_items(c)
    tagged = {i for i, m in metadata.items() if "label" in m}
    assert tagged == {f"s{i}" for i in range(40, 100)}  # after the cursor, and only there
    correct = sum(metadata[i]["label"] == metadata[i]["colour"] for i in tagged)
    assert correct / len(tagged) >= 0.9


def test_a_job_that_fails_when_resumed_says_why(
    tmp_path: Path, engine: Engine, shapes: list[ShapeSample]
) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        add_shapes(c, shapes[:20])
    labels = [{"label": "red", "direction": None}, {"label": "blue", "direction": "removed"}]
    job_id = _insert_job(engine, "queued", 1, _params(labels=labels))
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        job = wait_for(c, job_id)
    assert job["state"] == "failed"
    assert "direction 'removed' not found" in job["error"]


def test_stopping_the_server_mid_job_requeues_it(
    tmp_path: Path, engine: Engine, shapes: list[ShapeSample], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, classify=ClassifySettings(job_batch=10))
    # Hold the job in its second batch until the server has begun to stop.
    inside, release = threading.Event(), threading.Event()
    original, calls = autotag._tag, []

    def held(*args: Any) -> list[int]:
        calls.append(1)
        if len(calls) == 2:
            inside.set()
            assert release.wait(30)
        return original(*args)

    monkeypatch.setattr(autotag, "_tag", held)
    release_on_stop(monkeypatch, release)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        add_shapes(c, shapes[:60])
        job_id = c.post(TAG, json={"labels": list(COLOURS)}).json()["id"]
        assert inside.wait(30)
    with Session(engine) as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        assert (row.state, row.done) == ("queued", 20)  # the batch in flight was finished
    monkeypatch.setattr(autotag, "_tag", original)
    with TestClient(create_app(settings, engine=engine), headers=AUTH) as c:
        job = wait_for(c, job_id)
        assert job["state"] == "done"
        assert job["done"] == 60
        assert all("label" in m for m in all_items(c).values())


BAD: dict[str, tuple[dict[str, Any], int, str, str]] = {
    "duplicate labels": ({"labels": ["red", "red"]}, 422, "invalid-input", "twice"),
    "unknown direction": (
        {"labels": ["red", {"label": "b", "direction": "nope"}]},
        404,
        "not-found",
        "nope",
    ),
    "no labels": ({"labels": []}, 422, "validation-error", "labels"),
    "a field a filter cannot name": (
        {"labels": ["red"], "field": "a.b"},
        422,
        "validation-error",
        "field",
    ),
    "the same field twice": (
        {"labels": ["red"], "field": "x", "probability_field": "x"},
        422,
        "invalid-input",
        "differ",
    ),
    "probability over 1": (
        {"labels": ["red"], "min_probability": 2},
        422,
        "validation-error",
        "min_probability",
    ),
    "template without {}": (
        {"labels": ["red"], "templates": ["red"]},
        422,
        "invalid-input",
        "template 0",
    ),
}


@pytest.mark.parametrize(("body", "status", "kind", "needle"), list(BAD.values()), ids=list(BAD))
def test_a_job_that_could_not_run_is_refused_at_creation(
    client: TestClient,
    shapes: list[ShapeSample],
    body: dict[str, Any],
    status: int,
    kind: str,
    needle: str,
) -> None:
    add_shapes(client, shapes[:4])
    r = client.post(TAG, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == f"/problems/{kind}"
    assert needle in r.json()["detail"]
    assert client.get("/v1/collections/shapes/jobs").json()["jobs"] == []


def test_jobs_of_missing_collections_and_unknown_jobs_are_404(
    client: TestClient, shapes: list[ShapeSample]
) -> None:
    r = client.post("/v1/collections/nope/autotag", json={"labels": ["red"]})
    assert r.status_code == 404, r.text
    assert "nope" in r.json()["detail"]
    add_shapes(client, shapes[:4])
    job_id = client.post(TAG, json={"labels": ["red", "blue"]}).json()["id"]
    wait_for(client, job_id)
    assert client.delete("/v1/collections/shapes").status_code == 204
    for r in (
        client.post(TAG, json={"labels": ["red"]}),
        client.get("/v1/collections/shapes/jobs"),
        client.get(f"/v1/jobs/{job_id}"),  # a collection's jobs go with it
        client.get("/v1/jobs/424242"),
        client.post("/v1/jobs/424242/cancel"),
    ):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    for path in ("/v1/jobs/0", "/v1/jobs/99999999999999999999", "/v1/jobs/x"):
        assert client.get(path).status_code == 422


def test_creating_and_cancelling_jobs_needs_an_admin_key(
    client: TestClient, shapes: list[ShapeSample]
) -> None:
    add_shapes(client, shapes[:4])
    read = {"Authorization": f"Bearer {READ_KEY}"}
    assert client.post(TAG, json={"labels": ["red"]}, headers=read).status_code == 403
    job_id = client.post(TAG, json={"labels": ["red", "blue"]}).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}", headers=read).status_code == 200
    assert client.get("/v1/collections/shapes/jobs", headers=read).status_code == 200
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=read).status_code == 403
    wait_for(client, job_id)
