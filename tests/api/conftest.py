"""API fixtures: an app on a fresh data dir (SQLite, or PostgreSQL via ``engine``)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine

from latentspace.api import create_app
from latentspace.embedder.models.shapes import ShapeSample, generate
from latentspace.settings import EncoderSettings, Settings

ADMIN_KEY = "test-admin-key"
READ_KEY = "test-read-key"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test server: CPU, two keys, small limits where a test needs them."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "api_keys": f"admin:{ADMIN_KEY},read:{READ_KEY}",
        "encoder": EncoderSettings(device="cpu", decode_workers=0, batch_size=64),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def image_bytes(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    """An image encoded as ``fmt``."""
    out = io.BytesIO()
    image.save(out, format=fmt, quality=quality)
    return out.getvalue()


def b64(data: bytes) -> str:
    """Base64 text of bytes."""
    return base64.b64encode(data).decode()


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
