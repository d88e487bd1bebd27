"""Images are decoded in bounded groups under a per-request pixel budget."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.service.encoders import EncoderPool
from latentspace.settings import EncoderSettings, LimitSettings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def flat_png(side: int, colour: str) -> bytes:
    """A large image that compresses to almost nothing: the amplification case."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, format="PNG")
    return out.getvalue()


def test_decoding_is_bounded_by_group_and_by_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = EncoderPool.encode_images

    def spy(self: EncoderPool, encoder: object, images: list[Image.Image]) -> object:
        groups.append(sum(i.width * i.height for i in images))
        return real(self, encoder, images)  # type: ignore[arg-type]

    monkeypatch.setattr(EncoderPool, "encode_images", spy)
    settings = make_settings(
        tmp_path,
        limits=LimitSettings(max_image_pixels=1_000_000, max_request_pixels=3_000_000),
        encoder=EncoderSettings(device="cpu", decode_workers=0, decode_pixels=1_500_000),
    )
    colours = ["red", "green", "blue", "yellow", "purple"]
    items = [
        {"id": f"big{i}", "image": base64.b64encode(flat_png(1000, c)).decode()}
        for i, c in enumerate(colours)
    ]
    assert sum(len(i["image"]) for i in items) < 100_000  # 5 MP of pixels in a small body
    with TestClient(create_app(settings), headers=AUTH) as client:
        assert client.post("/v1/collections", json={"name": "m", "model": "tiny-shapes"}).is_success
        r = client.post("/v1/collections/m/items", json={"items": items})
        assert r.status_code == 207, r.text
        statuses = [i["status"] for i in r.json()["items"]]
        assert statuses == ["created"] * 3 + ["error"] * 2  # 3 MP allowed per request
        detail = r.json()["items"][3]["error"]["detail"]
        assert "4000000 pixels decoded by this request" in detail
        assert "LATENTSPACE_LIMITS__MAX_REQUEST_PIXELS" in detail
        assert client.get("/v1/collections/m").json()["count"] == 3
    assert groups == [1_000_000] * 3  # never more than decode_pixels at once
