"""migrate from the command line: a collection of the local data dir moves to tiny-shapes-b
and answers as a collection built with it does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures import shapes_folder
from typer.testing import CliRunner

from latentspace.cli import app


def test_migrate_moves_a_collection_to_another_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSPACE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "200")
    images = shapes_folder(tmp_path / "images")
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    cli("ingest", "shapes", str(images))
    cli("ingest", "fresh", str(images), "--model", "tiny-shapes-b")
    moved = cli("migrate", "shapes", "tiny-shapes-b")
    assert "shapes: now tiny-shapes-b; 40 items re-encoded, 0 through the adapter" in moved
    assert "held-out recall@10" in moved
    query = ("a red circle", "-k", "10", "--json")
    found = json.loads(cli("search", "shapes", *query))["results"]
    assert found == json.loads(cli("search", "fresh", *query))["results"]
    again = runner.invoke(app, ["migrate", "shapes", "tiny-shapes-b"])
    assert again.exit_code == 2
    assert "already uses model 'tiny-shapes-b'" in again.stderr
