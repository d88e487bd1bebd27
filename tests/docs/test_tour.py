"""The README's API tour, run as written against `latentspace demo` (the server `make run`
starts), with only the port changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.cli_server import cli_server

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour() -> str:
    text = README.read_text()
    section = text[text.index("## Quick tour of the API") :]
    return section[
        section.index("```bash\n") + 8 : section.index("```", section.index("```bash") + 7)
    ]


@pytest.mark.timeout(300)
def test_the_readme_tour_works_against_the_demo(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "demo", "--images", "48") as server:
        server.wait_for("ready at", 240)
        port = server.url.rsplit(":", 1)[1]
        script = _tour().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert f"api=http://127.0.0.1:{port}" in script
        # each answer on its own line, so each can be read back
        script = 'curl() { command curl --fail-with-body "$@"; echo; }\n' + script
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=README.parent,  # the clone's folder, where the tour runs: examples/ is there
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
