"""`latentspace serve` says where it is ready and logs one line per request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.cli_server import cli_server

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_serve_prints_a_ready_line_and_logs_each_request(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "serve", "--no-json-logs") as server:
        ready = server.wait_for("ready at", 90)
        assert server.url in ready
        assert httpx.get(f"{server.url}/v1/collections").status_code == 200
        assert "GET /v1/collections 200" in server.wait_for("GET /v1/collections", 30)
