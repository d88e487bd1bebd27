"""`latentspace serve` says where it is ready and logs one line per request."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.timeout(120)
def test_a_second_server_on_the_same_data_directory_says_why_in_one_line(
    tmp_path: Path,
) -> None:
    with cli_server(tmp_path / "data", "serve") as server:
        server.wait_for("ready at", 90)
        second = subprocess.run(
            [sys.executable, "-m", "latentspace.cli", "serve", "--port", "1"],
            env={**os.environ, "LATENTSPACE_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "is in use by process" in lines[0]
    assert server.url in lines[0]
    assert "Traceback" not in second.stderr
