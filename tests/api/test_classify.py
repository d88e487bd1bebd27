"""Zero-shot classification through the API: tiny-shapes' colours and shapes of held-out
images are told apart by their names alone, stored items classify as their images do, a
stored direction can be a label, and every bad request is a 4xx problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, READ_KEY, b64, image_bytes, make_settings

from latentspace.api import create_app
from latentspace.embedder.models.shapes import COLOURS, SHAPES, ShapeSample, generate
from latentspace.settings import ClassifySettings, LimitSettings, Settings

URL = "/v1/collections/shapes/classify"


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, shapes: list[ShapeSample]
) -> Iterator[TestClient]:
    """One server for the module (its tests only read): the 200 shapes as ``shapes``
    (ids s0..s199), and a raw-vector collection ``raw`` of 4-d vectors (v0)."""
    settings = make_settings(tmp_path_factory.mktemp("classify"))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        assert c.post("/v1/collections", json={"name": "shapes", "model": "tiny-shapes"}).is_success
        items = [
            {"id": f"s{i}", "image": b64(image_bytes(s.image)), "metadata": {"colour": s.colour}}
            for i, s in enumerate(shapes)
        ]
        assert c.post("/v1/collections/shapes/items", json={"items": items}).is_success
        assert c.post("/v1/collections", json={"name": "raw", "dim": 4}).is_success
        vectors = {"ids": ["v0"], "vectors": [[1, 0, 0, 0]]}
        assert c.post("/v1/collections/raw/vectors", json=vectors).is_success
        yield c


@pytest.fixture(scope="module")
def held_out() -> list[ShapeSample]:
    """128 images none of the stored 200 is (another seed), four of each colour × shape."""
    return generate(128, seed=2024)


def encoded(samples: list[ShapeSample]) -> list[str]:
    return [b64(image_bytes(s.image)) for s in samples]


def top_labels(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [result["labels"][0]["label"] for result in r.json()["results"]]


def accuracy(predicted: list[str], truth: list[str]) -> float:
    assert len(predicted) == len(truth)
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


@pytest.mark.parametrize("attribute", ["colour", "shape"])
def test_held_out_colours_and_shapes_are_classified_by_their_names(
    client: TestClient, held_out: list[ShapeSample], attribute: str
) -> None:
    labels = list(COLOURS) if attribute == "colour" else list(SHAPES)
    r = client.post(URL, json={"labels": labels, "images": encoded(held_out)})
    truth = [getattr(s, attribute) for s in held_out]
    assert accuracy(top_labels(r), truth) >= 0.9
    images = [result["image"] for result in r.json()["results"]]
    assert images == list(range(len(held_out)))


def test_stored_items_classify_as_their_uploaded_images(
    client: TestClient, shapes: list[ShapeSample]
) -> None:
    ids = [f"s{i}" for i in range(40)]
    by_item = client.post(URL, json={"labels": list(COLOURS), "items": ids, "k": 3})
    by_image = client.post(
        URL, json={"labels": list(COLOURS), "images": encoded(shapes[:40]), "k": 3}
    )
    assert by_item.status_code == by_image.status_code == 200, by_item.text
    items, images = by_item.json()["results"], by_image.json()["results"]
    assert [r["item"] for r in items] == ids
    for item, image in zip(items, images, strict=True):
        assert [x["label"] for x in item["labels"]] == [x["label"] for x in image["labels"]]
        for a, b in zip(item["labels"], image["labels"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)
    assert (
        accuracy([r["labels"][0]["label"] for r in items], [s.colour for s in shapes[:40]]) >= 0.9
    )


def test_items_and_images_in_one_request_come_back_items_first(
    client: TestClient, held_out: list[ShapeSample]
) -> None:
    body = {"labels": list(SHAPES), "images": encoded(held_out[:2]), "items": ["s3", "s1"]}
    results = client.post(URL, json=body).json()["results"]
    assert [(r["item"], r["image"]) for r in results] == [
        ("s3", None),
        ("s1", None),
        (None, 0),
        (None, 1),
    ]


def test_a_stored_direction_can_be_a_label(client: TestClient, held_out: list[ShapeSample]) -> None:
    r = client.post(
        "/v1/collections/shapes/directions",
        json={
            "name": "towards-blue",
            "positive": [{"text": "blue"}],
            "negative": [{"text": "red"}],
        },
    )
    assert r.status_code == 201, r.text
    labels: list[Any] = [c for c in COLOURS if c != "blue"]
    labels.append({"label": "blue", "direction": "towards-blue"})
    predicted = top_labels(client.post(URL, json={"labels": labels, "images": encoded(held_out)}))
    assert accuracy(predicted, [s.colour for s in held_out]) >= 0.9
    blue = [p for p, s in zip(predicted, held_out, strict=True) if s.colour == "blue"]
    assert blue
    assert accuracy(blue, ["blue"] * len(blue)) >= 0.9


def test_top_k_is_sorted_and_its_probabilities_sum_to_at_most_one(
    client: TestClient, held_out: list[ShapeSample]
) -> None:
    images = encoded(held_out[:8])
    for k in (1, 3, 8):
        results = client.post(URL, json={"labels": list(COLOURS), "images": images, "k": k})
        for result in results.json()["results"]:
            probabilities = [x["probability"] for x in result["labels"]]
            assert len(probabilities) == k
            assert len({x["label"] for x in result["labels"]}) == k
            assert probabilities == sorted(probabilities, reverse=True)
            assert all(0.0 <= p <= 1.0 for p in probabilities)
            assert sum(probabilities) <= 1.0 + 1e-9
            if k == len(COLOURS):
                assert sum(probabilities) == pytest.approx(1.0)
    # more than there are labels: every label, once
    result = client.post(URL, json={"labels": ["red", "blue"], "images": images[:1], "k": 5})
    assert len(result.json()["results"][0]["labels"]) == 2


def test_temperature_and_templates_shape_the_distribution(
    client: TestClient, held_out: list[ShapeSample]
) -> None:
    images = encoded(held_out[:16])
    sharp = client.post(URL, json={"labels": list(COLOURS), "images": images})
    soft = client.post(URL, json={"labels": list(COLOURS), "images": images, "temperature": 1.0})
    assert top_labels(sharp) == top_labels(soft)  # same argmax
    for a, b in zip(sharp.json()["results"], soft.json()["results"], strict=True):
        assert a["labels"][0]["probability"] > b["labels"][0]["probability"]
        assert b["labels"][0]["probability"] < 0.5  # cosines / 1 are nearly uniform over 8
    templated = client.post(
        URL, json={"labels": list(COLOURS), "images": images, "templates": ["a {} shape", "{}"]}
    )
    assert accuracy(top_labels(templated), [s.colour for s in held_out[:16]]) >= 0.9


def test_default_templates_come_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSPACE_CLASSIFY__TEMPLATES", '["a drawing of a {}", "{}"]')
    monkeypatch.setenv("LATENTSPACE_CLASSIFY__TEMPERATURE", "0.05")
    assert Settings().classify == ClassifySettings(
        templates=["a drawing of a {}", "{}"], temperature=0.05
    )
    monkeypatch.setenv("LATENTSPACE_CLASSIFY__TEMPLATES", '["no placeholder"]')
    with pytest.raises(ValueError, match="no \\{\\}"):
        Settings()


def test_a_read_key_may_classify(client: TestClient, held_out: list[ShapeSample]) -> None:
    r = client.post(
        URL,
        json={"labels": ["red", "blue"], "items": ["s0"]},
        headers={"Authorization": f"Bearer {READ_KEY}"},
    )
    assert r.status_code == 200, r.text


def assert_problem(r: httpx.Response, status: int, kind: str, needle: str) -> None:
    """``r`` is a problem of ``status`` and ``kind`` whose detail names ``needle``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["type"] == f"/problems/{kind}", body
    assert needle.lower() in body["detail"].lower(), body["detail"]


TINY_PNG = b64(image_bytes(generate(1, seed=5)[0].image))
GOOD: dict[str, Any] = {"labels": ["red", "blue"], "items": ["s0"]}

BAD: dict[str, tuple[str, dict[str, Any], int, str, str]] = {
    "unknown collection": ("/v1/collections/nope/classify", GOOD, 404, "not-found", "nope"),
    "unknown item": (URL, {**GOOD, "items": ["s0", "ghost"]}, 404, "not-found", "ghost"),
    "unknown direction": (
        URL,
        {**GOOD, "labels": ["red", {"label": "x", "direction": "gone"}]},
        404,
        "not-found",
        "gone",
    ),
    "no labels": (URL, {**GOOD, "labels": []}, 422, "validation-error", "labels"),
    "duplicate labels": (URL, {**GOOD, "labels": ["red", "red"]}, 422, "invalid-input", "twice"),
    "blank label": (URL, {**GOOD, "labels": ["red", "  "]}, 422, "invalid-input", "empty"),
    "NUL in a label": (URL, {**GOOD, "labels": ["re\x00d"]}, 422, "invalid-input", "NUL"),
    "label too long": (URL, {**GOOD, "labels": ["x" * 300]}, 422, "validation-error", "labels"),
    "too many labels": (
        URL,
        {**GOOD, "labels": [f"l{i}" for i in range(1001)]},
        413,
        "limit-exceeded",
        "LATENTSPACE_LIMITS__MAX_LABELS",
    ),
    "too many prompts": (
        URL,
        {
            **GOOD,
            "labels": [f"l{i}" for i in range(900)],
            "templates": [f"{i} {{}}" for i in range(5)],
        },
        413,
        "limit-exceeded",
        "LATENTSPACE_LIMITS__MAX_PROMPTS",
    ),
    "template without {}": (
        URL,
        {**GOOD, "templates": ["a photo of a {}", "a photo"]},
        422,
        "invalid-input",
        "template 1",
    ),
    "repeated template": (URL, {**GOOD, "templates": ["{}", "{}"]}, 422, "invalid-input", "twice"),
    "no templates": (URL, {**GOOD, "templates": []}, 422, "validation-error", "templates"),
    "zero temperature": (URL, {**GOOD, "temperature": 0}, 422, "validation-error", "temperature"),
    "negative temperature": (
        URL,
        {**GOOD, "temperature": -1},
        422,
        "validation-error",
        "temperature",
    ),
    "k below 1": (URL, {**GOOD, "k": 0}, 422, "validation-error", "k"),
    "nothing to classify": (URL, {"labels": ["red"]}, 422, "validation-error", "nothing"),
    "bad base64": (URL, {"labels": ["red"], "images": ["***"]}, 422, "invalid-input", "image 0"),
    "not an image": (
        URL,
        {"labels": ["red"], "images": [TINY_PNG, b64(b"plain text, no image")]},
        422,
        "invalid-input",
        "image 1",
    ),
    "unknown field": (URL, {**GOOD, "colour": "red"}, 422, "validation-error", "colour"),
    "label object without direction": (
        URL,
        {**GOOD, "labels": [{"label": "red"}]},
        422,
        "validation-error",
        "labels",
    ),
    "text labels for raw vectors": (
        "/v1/collections/raw/classify",
        {"labels": ["red"], "items": ["v0"]},
        422,
        "invalid-input",
        "raw vectors",
    ),
}


@pytest.mark.parametrize(
    ("url", "body", "status", "kind", "needle"), list(BAD.values()), ids=list(BAD)
)
def test_bad_classify_requests_are_4xx_problems(
    client: TestClient, url: str, body: dict[str, Any], status: int, kind: str, needle: str
) -> None:
    assert_problem(client.post(url, json=body), status, kind, needle)


def test_directions_alone_classify_a_raw_vector_collection(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "raw3", "dim": 3}).status_code == 201
    vectors = {"ids": ["x", "y"], "vectors": [[1, 0.1, 0], [0.1, 1, 0]]}
    assert client.post("/v1/collections/raw3/vectors", json=vectors).status_code == 200
    for name, term in (("to-x", {"item": "x"}), ("to-y", {"item": "y"})):
        body = {"name": name, "positive": [term], "negative": [{"vector": [0, 0, 1]}]}
        assert client.post("/v1/collections/raw3/directions", json=body).status_code == 201
    labels = [{"label": "X", "direction": "to-x"}, {"label": "Y", "direction": "to-y"}]
    r = client.post("/v1/collections/raw3/classify", json={"labels": labels, "items": ["x", "y"]})
    assert top_labels(r) == ["X", "Y"]


def test_the_label_limit_is_a_setting_the_schema_states(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, limits=LimitSettings(max_labels=2))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        r = c.post("/v1/collections", json={"name": "t", "model": "tiny-shapes"})
        assert r.status_code == 201, r.text
        items = {"items": [{"id": "a", "text": "a red star"}]}
        assert c.post("/v1/collections/t/items", json=items).status_code == 200
        body = {"labels": ["red", "blue", "green"], "items": ["a"]}
        needle = "3 labels, over the limit of 2 (LATENTSPACE_LIMITS__MAX_LABELS)"
        assert_problem(
            c.post("/v1/collections/t/classify", json=body), 413, "limit-exceeded", needle
        )
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
        for model in ("ClassifyRequest", "AutotagRequest"):
            assert schemas[model]["properties"]["labels"]["maxItems"] == 2
