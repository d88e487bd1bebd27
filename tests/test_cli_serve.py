"""`latentspace serve` says where it is ready and logs one line per request."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_serve_prints_a_ready_line_and_logs_each_request(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LATENTSPACE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    env.pop("LATENTSPACE_API_KEYS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "latentspace.cli", "serve", "--port", str(port), "--no-json-logs"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert server.stderr is not None
    stream = server.stderr
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True)
    reader.start()

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + 90
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never logged; got {seen}")

    try:
        ready = wait_for("ready at")
        assert f"http://127.0.0.1:{port}" in ready
        assert httpx.get(f"http://127.0.0.1:{port}/v1/collections").status_code == 200
        assert "GET /v1/collections 200" in wait_for("GET /v1/collections")
    finally:
        server.terminate()
        server.wait(30)
        reader.join(10)  # the server's end of the pipe is closed: the reader sees EOF
        stream.close()
