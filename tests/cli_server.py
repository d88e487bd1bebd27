"""A ``latentspace`` command that serves (``serve``, ``demo``) run in a subprocess on a free
loopback port, its log lines read as they come."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures import free_port

__all__ = ["CliServer", "cli_server"]


@dataclass
class CliServer:
    """The running command: its base URL and its log lines (stderr) so far."""

    url: str
    process: subprocess.Popen[str]
    lines: queue.Queue[str]

    def wait_for(self, text: str, seconds: float) -> str:
        """The first line not yet read that contains ``text``.

        Raises:
            AssertionError: none came within ``seconds``, or the process exited.
        """
        deadline = time.monotonic() + seconds
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, f"exited; logged {seen}"
                continue
            seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never logged; got {seen}")

    def drained(self) -> list[str]:
        """Every line logged and not yet read (for a failure's message)."""
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out


@contextmanager
def cli_server(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[CliServer]:
    """Run ``latentspace ARGS --port P`` on ``data_dir`` (with ``env`` added to the
    environment; without API keys unless ``env`` sets some); stop it on exit."""
    port = free_port()
    inherited = dict(os.environ)
    inherited.pop("LATENTSPACE_API_KEYS", None)  # keys only where ``env`` gives them
    env = {
        **inherited,
        "LATENTSPACE_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "latentspace.cli", *args, "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    stream = process.stderr
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True)
    reader.start()
    try:
        yield CliServer(f"http://127.0.0.1:{port}", process, lines)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)
        reader.join(10)  # the server's end of the pipe is closed: the reader sees EOF
        stream.close()
