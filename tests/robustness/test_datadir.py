"""One process owns a data directory; CLI commands on it talk to that server, or refuse."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import make_settings, serve
from typer.testing import CliRunner

from latentspace.api import create_app
from latentspace.cli import app as cli
from latentspace.embedder.models.shapes import draw_shape
from latentspace.errors import Conflict
from latentspace.service import lifecycle


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("LATENTSPACE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    monkeypatch.setenv("LATENTSPACE_ENCODER__DECODE_WORKERS", "0")
    return CliRunner()


def shapes(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        buffer = io.BytesIO()
        draw_shape("red", "circle", np.random.default_rng(i)).save(buffer, format="PNG")
        (folder / f"{i}.png").write_bytes(buffer.getvalue())
    return folder


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)):
        second = TestClient(create_app(settings))
        with pytest.raises(Conflict, match=f"in use by process {os.getpid()}"), second:
            pass
    with TestClient(create_app(settings)) as again:  # released when the first one stopped
        assert again.get("/healthz").status_code == 200


def test_the_cli_talks_to_the_server_that_holds_the_data_directory(
    runner: CliRunner, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", api_keys="", auth="off")
    folder = shapes(tmp_path / "images", 5)
    with serve(settings) as url:
        result = runner.invoke(cli, ["ingest", "c", str(folder), "--json"])
        assert result.exit_code == 0, result.output
        # the server saw the write: its own count, search and saved index agree with SQL
        stats = httpx.post(f"{url}/v1/collections/c/flush", timeout=60).json()
        assert stats["count"] == 5
        found = httpx.post(
            f"{url}/v1/collections/c/search",
            json={"query": {"text": "a red circle"}, "k": 10},
            timeout=60,
        ).json()["results"]
        assert len(found) == 5
        result = runner.invoke(cli, ["search", "c", "a red circle", "--json"])
        assert result.exit_code == 0, result.output


def test_the_cli_refuses_a_data_directory_held_by_a_process_that_serves_no_url(
    runner: CliRunner, tmp_path: Path
) -> None:
    held = lifecycle.start(make_settings(tmp_path / "data"))
    try:
        result = runner.invoke(cli, ["search", "c", "red"])
        assert result.exit_code == 2
        assert "in use by process" in result.output
        assert "--url" in result.output
    finally:
        lifecycle.stop(held)
