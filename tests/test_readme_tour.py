"""The README's API tour, run as written against `latentspace demo` (the server `make run`
starts), with only the port changed."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from latentspace.embedder.models.shapes import draw_shape

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour() -> str:
    text = README.read_text()
    section = text[text.index("## Quick tour of the API") :]
    return section[
        section.index("```bash\n") + 8 : section.index("```", section.index("```bash") + 7)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
def test_the_readme_tour_works_against_the_demo(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LATENTSPACE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    env.pop("LATENTSPACE_API_KEYS", None)
    rng = np.random.default_rng(0)
    draw_shape("red", "square", rng).save(tmp_path / "red-square.png")
    draw_shape("blue", "star", rng).save(tmp_path / "blue-star.jpg")
    server = subprocess.Popen(
        [sys.executable, "-m", "latentspace.cli", "demo", "--images", "48", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert server.stderr is not None
    stream = server.stderr
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("ready at" in x for x in list(lines.queue)):
            assert time.monotonic() < deadline, list(lines.queue)
            assert server.poll() is None, list(lines.queue)
            time.sleep(0.2)
        script = _tour().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert f"api=http://127.0.0.1:{port}" in script
        # each answer on its own line, so each can be read back
        script = 'curl() { command curl --fail-with-body "$@"; echo; }\n' + script
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        answers = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
        assert len(answers) == 5, done.stdout
        text_search, arithmetic, created, uploaded, item = answers
        shapes = [(h["metadata"]["colour"], h["metadata"]["shape"]) for h in text_search["results"]]
        assert shapes[0] == ("green", "triangle"), shapes
        top = arithmetic["results"][0]["metadata"]
        assert (top["colour"], top["shape"]) == ("blue", "circle")
        assert created["name"] == "mine"
        assert [i["id"] for i in uploaded["items"]] == ["red-square.png", "blue-star.jpg"]
        assert item["id"] == "red-square.png"
    finally:
        server.terminate()
        server.wait(30)
        reader.join(10)
        stream.close()
