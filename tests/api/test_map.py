"""The map through the API: fitted as a job, read without refitting, clusters that mean
something on tiny-shapes (shapes lie apart, clusters are colour × shape, names match)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import READ_KEY, assert_problem, b64, fitted_map, image_bytes, wait_for

from latentspace.embedder.models.shapes import COLOURS, SHAPES, ShapeSample


def _kinds(shapes: list[ShapeSample]) -> dict[str, str]:
    return {f"s{i}": f"{s.colour} {s.shape}" for i, s in enumerate(shapes)}


def test_pca_map_keeps_shapes_apart(
    client: TestClient, shapes_collection: str, shapes: list[ShapeSample]
) -> None:
    view = fitted_map(client, shapes_collection, method="pca")
    assert view["method"] == "pca"
    assert view["seq"] == view["fitted_seq"]
    assert sorted(view["ids"]) == sorted(f"s{i}" for i in range(200))
    xy = np.column_stack([view["x"], view["y"]])
    assert np.isfinite(xy).all()
    shape = {f"s{i}": s.shape for i, s in enumerate(shapes)}
    labels = np.array([shape[i] for i in view["ids"]])
    # PCA's two axes are the shapes': a shape's points lie together, apart from the others
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    other = labels[:, None] != labels[None, :]
    assert d[same].mean() < 0.5 * d[other].mean()
    assert len(view["cluster"]) == 200


@pytest.mark.slow
def test_umap_clusters_are_colour_and_shape_named_by_the_vocabulary(
    client: TestClient, shapes_collection: str, shapes: list[ShapeSample]
) -> None:
    vocabulary = [f"a drawing of a {c} {s}" for c in COLOURS for s in SHAPES]
    view = fitted_map(client, shapes_collection, vocabulary=vocabulary)
    assert view["method"] == "umap"  # auto, from 200 items
    kind = _kinds(shapes)
    members: dict[int, list[str]] = {}
    for item_id, c in zip(view["ids"], view["cluster"], strict=True):
        members.setdefault(c, []).append(kind[item_id])
    clusters = [c for c in members if c >= 0]
    assert len(clusters) >= 16
    clustered = sum(len(members[c]) for c in clusters)
    assert clustered >= 150  # most points are in a cluster
    pure = sum(Counter(members[c]).most_common(1)[0][1] for c in clusters)
    assert pure / clustered >= 0.9  # a cluster is one colour and shape
    named = typical = 0
    for info in view["clusters"]:
        majority = Counter(members[info["id"]]).most_common(1)[0][0]
        assert info["size"] == len(members[info["id"]])
        typical += kind[info["example"]] == majority
        named += info["label"] == f"a drawing of a {majority}"
    assert typical / len(view["clusters"]) >= 0.9
    assert named / len(view["clusters"]) >= 0.8


@pytest.mark.parametrize("method", ["pca", pytest.param("umap", marks=pytest.mark.slow)])
def test_reading_places_new_items_without_refitting(
    client: TestClient, shapes_collection: str, shapes: list[ShapeSample], method: str
) -> None:
    # PCA places them by its mean and components, UMAP among their nearest fitted points
    name = shapes_collection
    first = fitted_map(client, name, method=method)
    reader = {"Authorization": f"Bearer {READ_KEY}"}
    again = client.get(f"/v1/collections/{name}/map", headers=reader).json()
    assert again == first  # nothing written: the cached map as it is (a read key reads it)
    r = client.post(f"/v1/collections/{name}/map", json={}, headers=reader)
    assert_problem(r, 403, "forbidden", "admin")
    # a new red circle (drawn anew) and a deleted item
    red_circle = next(s for s in shapes if s.colour == "red" and s.shape == "circle")
    gone = next(f"s{i}" for i, s in enumerate(shapes) if s is not red_circle)
    new = {"id": "new-red", "image": b64(image_bytes(red_circle.image.rotate(90)))}
    assert client.post(f"/v1/collections/{name}/items", json={"items": [new]}).is_success
    assert client.delete(f"/v1/collections/{name}/items/{gone}").status_code == 204
    view = client.get(f"/v1/collections/{name}/map").json()
    assert view["fitted_seq"] == first["fitted_seq"] < view["seq"]
    assert view["placed"] == 1
    assert gone not in view["ids"]
    assert "new-red" in view["ids"]
    at = {i: n for n, i in enumerate(view["ids"])}
    here = np.array([view["x"][at["new-red"]], view["y"][at["new-red"]]])
    twin = shapes.index(red_circle)
    there = np.array([view["x"][at[f"s{twin}"]], view["y"][at[f"s{twin}"]]])
    spread = np.ptp(np.column_stack([view["x"], view["y"]]), axis=0).max()
    assert np.linalg.norm(here - there) < 0.1 * spread  # placed beside its twin
    assert view["cluster"][at["new-red"]] == view["cluster"][at[f"s{twin}"]]


def test_map_bad_input(client: TestClient, shapes_collection: str) -> None:
    name = shapes_collection
    assert_problem(client.get(f"/v1/collections/{name}/map"), 404, "not-found", "no map yet")
    for body in ({"method": "tsne"}, {"min_cluster_size": 1}, {"vocabulary": [""]}):
        r = client.post(f"/v1/collections/{name}/map", json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.post("/v1/collections", json={"name": "raw", "dim": 4}).status_code == 201
    r = client.post("/v1/collections/raw/map", json={"vocabulary": ["a cat"]})
    assert_problem(r, 422, "invalid-input", "needs a collection with a model")
    assert_problem(client.post("/v1/collections/nope/map", json={}), 404, "not-found", "nope")
    assert_problem(client.get("/v1/collections/nope/map"), 404, "not-found", "nope")
    # too few items: the job fails, saying why
    r = client.post("/v1/collections/raw/map", json={})
    job = wait_for(client, r.json()["id"])
    assert job["state"] == "failed"
    assert "at least 3 items" in job["error"]


def test_without_a_vocabulary_clusters_are_named_by_their_nearest_text(
    client: TestClient, shapes_collection: str
) -> None:
    texts = [f"a drawing of a {c} {s}" for c in ("red", "blue") for s in SHAPES]
    body = {"items": [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]}
    assert client.post(f"/v1/collections/{shapes_collection}/items", json=body).is_success
    view = fitted_map(client, shapes_collection, method="pca")
    assert view["clusters"]
    for info in view["clusters"]:
        assert info["label"] in texts, info
