"""A model that needs a download, on a machine that cannot make one, fails at once with the
ways out: downloads switched off, or a hub that accepts no connection (no retries)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, assert_problem, free_port, make_settings

from latentspace.api import create_app
from latentspace.embedder.hub import require_hub
from latentspace.errors import ModelUnavailable


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> str:
    """Downloads on, and the hub a loopback port nothing listens on."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint


def test_downloads_off_is_said_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE") as e:
        require_hub("st:org/model")
    assert "tiny-shapes" in str(e.value)  # a way out


def test_an_unreachable_hub_is_said_at_once(unreachable_hub: str) -> None:
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        require_hub("st:org/model")


@pytest.mark.timeout(60)  # the hub client's own retries took 72 s here
@pytest.mark.parametrize("model", ["st:nobody/no-such-model", "openclip:ViT-B-32/openai"])
def test_creating_a_collection_of_a_model_to_download_is_a_quick_problem(
    unreachable_hub: str, tmp_path: Path, model: str
) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        r = client.post("/v1/collections", json={"name": "docs", "model": model})
        assert r.status_code == 422, r.text
        assert_problem(r, 422, r.json()["type"].rsplit("/", 1)[1], "cannot be reached")
        assert client.get("/v1/collections/docs").status_code == 404
