"""The data commands end to end on a local data dir: ingest (resumable), search, dedup,
reindex. Each runs in this process through Typer's runner (a process per command cost a
second or more of imports each; tests/test_cli_imports.py keeps the real processes)."""

from __future__ import annotations

import json
import subprocess
import traceback
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from latentspace.cli import app
from latentspace.embedder.models.shapes import generate

pytestmark = pytest.mark.slow


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The command run in this process (Typer's runner), as the shell would run it: its
    # exit code, stdout and stderr (an exception the command did not handle is on stderr).
    env = {"LATENTSPACE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, stderr)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 generated PNGs in nested folders, a corrupt JPEG and a text file."""
    root = tmp_path_factory.mktemp("images")
    for i, sample in enumerate(generate(2000, seed=3)):
        sub = root / sample.colour / sample.shape
        sub.mkdir(parents=True, exist_ok=True)
        sample.image.save(sub / f"{i:04d}.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "notes.txt").write_text("not an image, not picked up from a folder")
    return root


def test_ingest_reports_progress_and_resumes(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _cli(data, "ingest", "shapes", str(folder))
    assert first.returncode == 1, first.stderr  # one file failed, the run went on
    assert "2001/2001" in first.stderr  # the progress bar reached the end
    assert "images/s" in first.stderr
    assert "2000 created" in first.stderr
    assert "1 failed" in first.stderr
    assert "corrupt.jpg" in first.stderr
    assert "cannot read image header" in first.stderr
    second = _cli(data, "ingest", "shapes", str(folder), "--json")
    summary = json.loads(second.stdout)
    assert summary["skipped"] == 2000
    assert summary["created"] == 0
    assert list(summary["failed"]) == [str(folder / "corrupt.jpg")]
    found = _cli(data, "search", "shapes", "a yellow star", "-k", "5", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["results"]
    paths = [h["metadata"]["path"] for h in hits]
    assert all("/yellow/star/" in p for p in paths), paths
    # ids are the paths under the folder named, with folders written ':'
    assert all(h["id"] == ":".join(Path(h["metadata"]["path"]).parts[-3:]) for h in hits), hits


def test_ids_are_file_paths_and_a_copy_keeps_the_original(tmp_path: Path) -> None:
    data, root = tmp_path / "data", tmp_path / "photos"
    for sub in ("a", "b", "c"):
        (root / sub).mkdir(parents=True)
    samples = generate(2, seed=5)
    samples[0].image.save(root / "a" / "x.png")
    (root / "b" / "x-copy.png").write_bytes((root / "a" / "x.png").read_bytes())
    samples[1].image.save(root / "c" / "y.png")
    first = json.loads(_cli(data, "ingest", "p", str(root), "--json").stdout)
    assert (first["created"], first["skipped"], first["updated"]) == (2, 1, 0)
    listed = json.loads(_cli(data, "search", "p", "a shape", "-k", "5", "--json").stdout)
    by_id = {h["id"]: h["metadata"]["path"] for h in listed["results"]}
    assert by_id == {"a:x.png": str(root / "a" / "x.png"), "c:y.png": str(root / "c" / "y.png")}
    again = json.loads(_cli(data, "ingest", "p", str(root / "b"), "--json").stdout)
    assert (again["created"], again["skipped"], again["updated"]) == (0, 1, 0)


def test_search_terms_dedup_and_reindex(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    small = [
        p
        for colour in ("red", "blue")
        for shape in ("circle", "square", "triangle", "star")
        for p in sorted((folder / colour / shape).glob("*.png"))[:10]
    ]
    again = tmp_path / "again.jpg"
    Image.open(small[0]).save(again, quality=90)  # the same picture, other bytes
    assert _cli(data, "ingest", "s", *map(str, small), str(again)).returncode == 0
    red_square = next(p for p in small if "/red/square/" in str(p))
    ids = json.loads(
        _cli(data, "search", "s", "--image", str(red_square), "-k", "1", "--json").stdout
    )
    item = ids["results"][0]["id"]
    moved_query = _cli(
        data, "search", "s", f"item:{item}", "--plus", "blue", "--minus", "red", "-k", "3", "--json"
    )
    hits = json.loads(moved_query.stdout)["results"]
    assert all("/blue/square/" in h["metadata"]["path"] for h in hits), hits
    report = tmp_path / "report.html"
    dup = _cli(data, "dedup", "s", "--threshold", "0.995", "--json", "--html", str(report))
    assert dup.returncode == 0, dup.stderr
    clusters = [{m["id"] for m in c["members"]} for c in json.loads(dup.stdout)["clusters"]]
    first = json.loads(
        _cli(data, "search", "s", "--image", str(small[0]), "-k", "1", "--json").stdout
    )
    assert any(first["results"][0]["id"] in c and len(c) >= 2 for c in clusters), clusters
    assert '<img src="data:image' in report.read_text()
    table = _cli(data, "search", "s", "a red circle", "-k", "2")
    assert table.returncode == 0
    assert "score" in table.stdout
    rebuilt = _cli(data, "reindex", "s")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "81 vectors in a flat index" in rebuilt.stdout
    missing = _cli(data, "search", "nope", "x")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert f"in {data.resolve()}" in missing.stderr  # which data directory was asked
    bad = _cli(data, "ingest", "bad name", str(small[0].parent))
    assert bad.returncode == 2
    assert "'bad name' is not a name: use 1-128 letters, digits" in bad.stderr
    assert "pattern" not in bad.stderr


def test_demo_builds_its_collection_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _cli(data, "demo", "--images", "48", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert "48 images added to 'shapes'" in first.stderr
    again = _cli(data, "demo", "--images", "48", "--no-serve")
    assert "images added" not in again.stderr  # already built: nothing to do
    found = json.loads(_cli(data, "search", "shapes", "a blue star", "-k", "2", "--json").stdout)
    hits = found["results"]
    assert all((h["metadata"]["colour"], h["metadata"]["shape"]) == ("blue", "star") for h in hits)
    # the README's example: item s0, minus "red", plus "blue"
    s0 = json.loads(_cli(data, "search", "shapes", "item:s0", "-k", "1", "--json").stdout)
    shape = s0["results"][0]["metadata"]["shape"]
    moved = _cli(data, "search", "shapes", "item:s0", "--minus", "red", "--plus", "blue", "--json")
    assert moved.returncode == 0, moved.stderr
    top = json.loads(moved.stdout)["results"][0]["metadata"]
    assert (top["colour"], top["shape"]) == ("blue", shape)


def test_ingest_refuses_what_ray_mode_cannot_take(tmp_path: Path) -> None:
    # each refused before any work starts: exit 2 and a message that says what to change
    parquet = tmp_path / "texts.parquet"
    parquet.write_bytes(b"PAR1")  # never read: the refusal comes first
    cases = [
        (["ingest", "c", str(parquet)], "add --ray"),
        (["ingest", "c", str(parquet), str(tmp_path), "--ray"], "not both"),
        (["ingest", "c", str(tmp_path), "--ray", "--url", "http://127.0.0.1:9"], "drop --url"),
    ]
    for args, message in cases:
        done = _cli(tmp_path / "data", *args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr


def test_an_ingest_that_stores_nothing_leaves_no_collection_behind(tmp_path: Path) -> None:
    data, empty, broken = tmp_path / "data", tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    nothing = _cli(data, "ingest", "c", str(empty))
    assert nothing.returncode == 2
    assert "no image files" in nothing.stderr
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (broken / "b.jpg").write_bytes(b"\xff\xd8\xff nor this")
    failed = _cli(data, "ingest", "c", str(broken))
    assert failed.returncode == 1
    assert "removed again" in failed.stderr
    assert "does not exist" in _cli(data, "search", "c", "x").stderr  # no collection c
