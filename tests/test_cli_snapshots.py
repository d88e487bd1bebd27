"""snapshot and restore from the command line: a collection moves to another data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_cli_data import _cli

from latentspace.embedder.models.shapes import generate

pytestmark = pytest.mark.slow


def test_snapshot_and_restore_move_a_collection(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i, sample in enumerate(generate(40, seed=5)):
        sample.image.save(images / f"{i:02d}-{sample.colour}-{sample.shape}.png")
    here, there, file = tmp_path / "here", tmp_path / "there", tmp_path / "shapes.lsnap"
    assert _cli(here, "ingest", "shapes", str(images)).returncode == 0
    made = _cli(here, "snapshot", "shapes", str(file))
    assert made.returncode == 0, made.stderr
    assert "written to" in made.stdout
    restored = _cli(there, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert "shapes: 40 items restored" in restored.stdout
    query = ("search", "shapes", "a red circle", "-k", "10", "--json")
    before, after = _cli(here, *query), _cli(there, *query)
    assert before.returncode == after.returncode == 0, after.stderr
    found, expected = json.loads(after.stdout), json.loads(before.stdout)
    assert found["results"] == expected["results"]
    assert len(found["results"]) == 10
    again = _cli(there, "restore", str(file))  # the name is taken
    assert again.returncode == 2
    assert "already exists" in again.stderr
    copy = _cli(there, "restore", str(file), "--name", "copy")
    assert copy.returncode == 0, copy.stderr
    damaged = tmp_path / "damaged.lsnap"
    damaged.write_bytes(file.read_bytes()[:5000])
    refused = _cli(there, "restore", str(damaged), "--name", "other")
    assert refused.returncode == 2
    assert "truncated" in refused.stderr
