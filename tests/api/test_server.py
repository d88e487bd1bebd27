"""The issue's acceptance run, through a real uvicorn server on loopback with tiny-shapes.

Upload 200 generated shapes, search by text, do latent arithmetic, walk a path, detect a
re-encoded JPEG as a near duplicate and a re-sent file as an exact one, and use the
``openai`` client's ``embeddings.create`` unchanged against ``/v1/embeddings``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.fixtures import ADMIN_KEY, READ_KEY, image_bytes, make_settings, serve

from latentspace.embedder.models.shapes import ShapeSample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("live"))
    with serve(settings) as url:
        yield url


@pytest.fixture(scope="module")
def admin(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as c:
        yield c


@pytest.fixture(scope="module")
def uploaded(admin: httpx.Client, shapes: list[ShapeSample]) -> list[ShapeSample]:
    r = admin.post("/v1/collections", json={"name": "live", "model": "tiny-shapes"})
    assert r.status_code == 201, r.text
    files = [
        ("files", (f"shape-{i}.jpg", image_bytes(s.image, "JPEG", 95), "image/jpeg"))
        for i, s in enumerate(shapes)
    ]
    meta = [{"colour": s.colour, "shape": s.shape} for s in shapes]
    ids = [f"s{i}" for i in range(len(shapes))]
    r = admin.post(
        "/v1/collections/live/images",
        files=files,
        data={"metadata": json.dumps(meta), "ids": json.dumps(ids)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == len(shapes)
    assert admin.get("/v1/collections/live").json()["count"] == len(shapes)
    return shapes


def test_text_search_finds_green_triangles(admin: httpx.Client, uploaded: list) -> None:
    r = admin.post(
        "/v1/collections/live/search", json={"query": {"text": "a green triangle"}, "k": 5}
    )
    assert r.status_code == 200, r.text
    top = [(h["metadata"]["colour"], h["metadata"]["shape"]) for h in r.json()["results"]]
    assert top == [("green", "triangle")] * 5


def test_arithmetic_swaps_the_colour(admin: httpx.Client, uploaded: list[ShapeSample]) -> None:
    # Over several red items: item − "red" + "blue" lands on a blue item of the same shape.
    reds = [i for i, s in enumerate(uploaded) if s.colour == "red"][:8]
    correct = 0
    for i in reds:
        query = {
            "terms": [
                {"item": f"s{i}"},
                {"text": "red", "weight": -1},
                {"text": "blue", "weight": 1},
            ]
        }
        r = admin.post("/v1/collections/live/search", json={"query": query, "k": 1})
        assert r.status_code == 200, r.text
        hit = r.json()["results"][0]
        assert hit["id"] != f"s{i}"  # the query item itself is excluded
        meta = hit["metadata"]
        correct += (meta["colour"], meta["shape"]) == ("blue", uploaded[i].shape)
    assert correct >= 7, f"only {correct}/8 landed on a blue item of the same shape"


def test_path_walks_between_two_items(admin: httpx.Client, uploaded: list[ShapeSample]) -> None:
    a = next(i for i, s in enumerate(uploaded) if (s.colour, s.shape) == ("red", "circle"))
    b = next(i for i, s in enumerate(uploaded) if (s.colour, s.shape) == ("blue", "square"))
    body = {"from": {"item": f"s{a}"}, "to": {"item": f"s{b}"}, "steps": 7}
    r = admin.post("/v1/collections/live/path", json=body)
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [round(s["t"], 3) for s in steps] == [round(t, 3) for t in np.linspace(0, 1, 7)]
    ids = [s["item"]["id"] for s in steps]
    assert len(set(ids)) == len(ids)  # distinct at every step
    assert ids[0] == f"s{a}"
    colours = [s["item"]["metadata"]["colour"] for s in steps]
    assert colours[0] == "red"
    assert colours[-1] == "blue"


def test_reuploads_are_reported_as_duplicates(
    admin: httpx.Client, uploaded: list[ShapeSample]
) -> None:
    original = uploaded[5]
    same_file = image_bytes(original.image, "JPEG", 95)
    recompressed = image_bytes(original.image, "JPEG", 60)
    assert same_file != recompressed
    # Before inserting: the check endpoint finds both kinds.
    r = admin.post(
        "/v1/collections/live/duplicates/check",
        json={"image": __import__("base64").b64encode(recompressed).decode(), "threshold": 0.97},
    )
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["duplicate"] is True
    assert found["findings"][0]["id"] == "s5"
    assert found["findings"][0]["tier"] == "same_image"  # other bytes, the same picture
    assert found["findings"][0]["hamming"] <= found["hamming"]
    files = [
        ("files", ("again.jpg", same_file, "image/jpeg")),
        ("files", ("recompressed.jpg", recompressed, "image/jpeg")),
    ]
    r = admin.post(
        "/v1/collections/live/images",
        files=files,
        data={"ids": json.dumps(["again", "recompressed"])},
    )
    assert r.status_code == 200, r.text
    again, recomp = r.json()["items"]
    # both duplicate the stored original (the stored item wins over the batch's first)
    assert again["duplicate_of"] == {"id": "s5", "tier": "identical", "cosine": 1.0, "hamming": 0}
    assert recomp["duplicate_of"]["id"] == "s5"
    assert recomp["duplicate_of"]["tier"] == "same_image"
    assert recomp["duplicate_of"]["cosine"] >= 0.9
    r = admin.get("/v1/collections/live/duplicates", params={"tier": "same_image"})
    assert r.status_code == 200, r.text
    cluster = next(c for c in r.json()["clusters"] if c["representative"] == "s5")
    members = {m["id"]: m for m in cluster["members"]}
    assert {"s5", "again", "recompressed"} <= set(members)
    assert members["s5"]["tier"] is None
    assert all(m["hamming"] <= r.json()["hamming"] for m in members.values())


def test_openai_client_embeddings(server: str, tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=READ_KEY, max_retries=0)
    one = client.embeddings.create(model="tiny-shapes", input="a red square")
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 64
    assert one.usage.prompt_tokens > 0
    many = client.embeddings.create(
        model="tiny-shapes", input=["a red square", "a blue circle"], encoding_format="float"
    )
    vectors = np.array([d.embedding for d in many.data])
    assert vectors.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], one.data[0].embedding, atol=1e-6)
    # errors come in OpenAI's shape, so the SDK shows the reason, not only the status
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "text-embedding-3-small" in missing.value.message
    assert missing.value.type == "invalid_request_error"
    assert missing.value.code == "not-found"
    with pytest.raises(openai.UnprocessableEntityError) as unsupported:
        client.embeddings.create(model="tiny-shapes", input="x", dimensions=2)
    assert "dimensions=2" in unsupported.value.message
    with pytest.raises(openai.UnprocessableEntityError) as malformed:
        client.embeddings.create(model="tiny-shapes", input="x", encoding_format="hex")  # type: ignore[arg-type]
    assert malformed.value.param == "encoding_format"
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        bad.embeddings.create(model="tiny-shapes", input="x")
    assert denied.value.type == "authentication_error"
    assert denied.value.message


def test_request_ids_and_metrics(admin: httpx.Client, uploaded: list) -> None:
    r = admin.get("/v1/collections/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert admin.get("/healthz").json() == {"status": "ok"}
    assert admin.get("/readyz").status_code == 200
    # its own search (and encode): with -n the module's other tests may run elsewhere
    search = {"query": {"text": "a red square"}, "k": 1}
    assert admin.post("/v1/collections/live/search", json=search).status_code == 200
    text = admin.get("/metrics").text
    assert (
        'latentspace_http_request_duration_seconds_count{method="POST",route="/v1/collections/{name}/search"'
        in text
    )
    assert 'latentspace_index_vectors{collection="live",kind="flat"}' in text
    assert "latentspace_encode_seconds_count" in text


def test_cli_against_the_server(server: str, uploaded: list, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from latentspace.cli import app

    runner = CliRunner()
    args = ["--url", server, "--api-key", READ_KEY, "--json"]
    found = runner.invoke(app, ["search", "live", "a green triangle", "-k", "3", *args])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["results"]
    assert [(h["metadata"]["colour"], h["metadata"]["shape"]) for h in hits] == [
        ("green", "triangle")
    ] * 3
    denied = runner.invoke(app, ["reindex", "live", "--url", server, "--api-key", READ_KEY])
    assert denied.exit_code == 2
    assert "admin key" in denied.output
