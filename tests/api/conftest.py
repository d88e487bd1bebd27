"""API fixtures: an app on a fresh data dir (SQLite, or PostgreSQL via ``engine``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import ADMIN_KEY, b64, image_bytes, make_settings

from latentspace.api import create_app
from latentspace.embedder.models.shapes import ShapeSample, generate
from latentspace.settings import Settings


@pytest.fixture(scope="session")
def shapes() -> list[ShapeSample]:
    """200 generated tiny-shapes images (every colour × shape several times)."""
    return generate(200, seed=11)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Keys on, SQLite in a temp dir."""
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of a started app, sending the admin key."""
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


@pytest.fixture
def db_client(tmp_path: Path, engine: Engine) -> Iterator[TestClient]:
    """Like ``client``, on each database kind (SQLite; PostgreSQL when configured)."""
    app = create_app(make_settings(tmp_path), engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


@pytest.fixture
def shapes_collection(client: TestClient, shapes: list[ShapeSample]) -> str:
    """A tiny-shapes collection holding the 200 shapes as PNGs (ids s0..s199)."""
    r = client.post("/v1/collections", json={"name": "shapes", "model": "tiny-shapes"})
    assert r.status_code == 201, r.text
    items = [
        {
            "id": f"s{i}",
            "image": b64(image_bytes(s.image)),
            "metadata": {"colour": s.colour, "shape": s.shape, "n": i},
        }
        for i, s in enumerate(shapes)
    ]
    r = client.post("/v1/collections/shapes/items", json={"items": items})
    assert r.status_code == 200, r.text
    return "shapes"
