"""Commands that encode nothing never import torch: `--help`, `models`, every `--url` command
and the in-process commands that only read the index (dedup, reindex).

Each command runs in a fresh interpreter, which reports the heavy modules it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.fixtures import ADMIN_KEY, make_settings, serve

HEAVY = ("torch", "open_clip", "sentence_transformers", "transformers")
PROBE = f"""
import json, runpy, sys
sys.argv = ["latentspace", *sys.argv[1:]]
try:
    runpy.run_module("latentspace.cli", run_name="__main__")
except SystemExit:
    pass
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
    print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
"""


def heavy_imports(data_dir: Path, *args: str) -> tuple[list[str], str]:
    env = {**os.environ, "LATENTSPACE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    env["LATENTSPACE_API_KEY"] = ADMIN_KEY
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY=")), done.stdout + done.stderr


@pytest.mark.parametrize(
    "args", [["--help"], ["models"], ["models", "--json"], ["search", "--help"]]
)
def test_help_and_models_import_no_model_library(tmp_path: Path, args: list[str]) -> None:
    heavy, output = heavy_imports(tmp_path, *args)
    assert heavy == [], output
    assert "Usage" in output or "tiny-shapes" in output


def test_in_process_commands_import_torch_only_to_encode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data)
    with serve(settings) as url:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            assert c.post("/v1/collections", json={"name": "c", "model": "tiny-shapes"}).is_success
            items = [{"id": "a", "text": "a red square"}, {"id": "b", "text": "a blue star"}]
            assert c.post("/v1/collections/c/items", json={"items": items}).is_success
        for args in (["search", "c", "a red square"], ["dedup", "c"]):
            heavy, output = heavy_imports(data, *args, "--url", url)
            assert heavy == [], output  # the server encodes, not the CLI
            assert "a" in output
    for args in (["dedup", "c"], ["reindex", "c"]):
        heavy, output = heavy_imports(data, *args)
        assert heavy == [], output
    heavy, output = heavy_imports(data, "search", "c", "a red square")
    assert "torch" in heavy, output  # this one encodes its query in-process
