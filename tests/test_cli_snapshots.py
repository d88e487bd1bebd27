"""snapshot and restore from the command line: a collection moves to another data dir."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from tests.fixtures import shapes_folder
from typer.testing import CliRunner

from latentspace.cli import app


def test_snapshot_and_restore_move_a_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "200")
    images = shapes_folder(tmp_path / "images")
    here, there, file = tmp_path / "here", tmp_path / "there", tmp_path / "shapes.lsnap"
    runner = CliRunner()

    def cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env={"LATENTSPACE_DATA_DIR": str(data_dir)})
        return result.exit_code, result.stdout, result.stderr

    assert cli(here, "ingest", "shapes", str(images))[0] == 0
    lean = tmp_path / "lean.lsnap"
    code, out, err = cli(here, "snapshot", "shapes", str(lean), "--no-originals")
    assert code == 0, err
    code, out, err = cli(here, "snapshot", "shapes", str(file))
    assert code == 0, err
    assert "written to" in out
    with tarfile.open(file) as tar, tarfile.open(lean) as without:
        assert len([n for n in tar.getnames() if n.startswith("originals/")]) == 40
        assert not [n for n in without.getnames() if n.startswith("originals/")]
    code, out, err = cli(there, "restore", str(file))
    assert code == 0, err
    assert "shapes: 40 items restored" in out
    code, out, err = cli(there, "restore", str(file))
    assert code == 2
    assert "already exists" in err
    assert "--name NEW" in err
    assert "--replace" in err
    query = ("search", "shapes", "a red circle", "-k", "10", "--json")
    (code_a, before, _), (code_b, after, err) = cli(here, *query), cli(there, *query)
    assert code_a == code_b == 0, err
    found, expected = json.loads(after), json.loads(before)
    assert found["results"] == expected["results"]
    assert len(found["results"]) == 10
    blobs = sorted(p.name for p in (there / "blobs").rglob("*") if p.is_file())
    assert blobs == sorted(p.name for p in (here / "blobs").rglob("*") if p.is_file())
    code, _, err = cli(there, "restore", str(file))  # the name is taken
    assert code == 2
    assert "already exists" in err
    code, _, err = cli(there, "restore", str(file), "--name", "copy")
    assert code == 0, err
    damaged = tmp_path / "damaged.lsnap"
    damaged.write_bytes(file.read_bytes()[:5000])
    code, _, err = cli(there, "restore", str(damaged), "--name", "other")
    assert code == 2
    assert "truncated" in err


def test_a_snapshot_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"LATENTSPACE_DATA_DIR": str(tmp_path / "data")}
    images = shapes_folder(tmp_path / "images", count=2)
    assert runner.invoke(app, ["ingest", "v", str(images)], env=env).exit_code == 0
    result = runner.invoke(app, ["snapshot", "v", str(tmp_path / "missing" / "x.lsnap")], env=env)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot write {tmp_path / 'missing' / 'x.lsnap'}: no folder {tmp_path / 'missing'}"
    ]
    assert "FileNotFoundError" not in result.stderr  # no traceback of the command's own
