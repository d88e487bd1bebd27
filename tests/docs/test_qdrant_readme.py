"""The README's Qdrant snippet, run as written against ``latentspace serve`` (only the port
changed), with the unmodified qdrant-client."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from tests.cli_server import cli_server

pytestmark = pytest.mark.slow
pytest.importorskip("qdrant_client")
README = Path(__file__).resolve().parents[2] / "README.md"


def _block() -> str:
    text = README.read_text()
    heading = re.search(r"^## Qdrant-compatible API$", text, re.MULTILINE)
    assert heading, "the README has no Qdrant section"
    section = text[heading.end() :]
    section = section[: re.search(r"^## ", section, re.MULTILINE).start()]  # type: ignore[union-attr]
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    return str(blocks[0])


@pytest.mark.timeout(300)
def test_the_readme_snippet_works_as_written(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "serve") as server:
        server.wait_for("ready at", 120)
        port = server.url.rsplit(":", 1)[1]
        code = _block().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue()
    assert "id=2" in printed
    assert "'city': 'Oslo'" in printed
    assert "Rome" not in printed  # the filter
