"""snapshot and restore with s3:// URLs from the command line: a collection goes to a real
S3 server on loopback and comes back into another data dir; a bad URL, a missing object or
refused credentials is one line of error and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures import shapes_folder
from tests.s3_server import S3Server
from typer.testing import CliRunner

from latentspace.cli import app


def _env(s3: S3Server, data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        "LATENTSPACE_DATA_DIR": str(data_dir),
        "LATENTSPACE_BACKUP__ENDPOINT_URL": s3.endpoint,
        "LATENTSPACE_BACKUP__REGION": "us-east-1",
        "LATENTSPACE_BACKUP__ACCESS_KEY_ID": s3.access_key_id,
        "LATENTSPACE_BACKUP__SECRET_ACCESS_KEY": s3.secret_access_key,
    }
    return {**env, **overrides}


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_snapshot_to_s3_and_restore_from_it_move_a_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
) -> None:
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "200")
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/cli/shapes.lsnap"
    images = shapes_folder(tmp_path / "images", count=20)
    here, there = tmp_path / "here", tmp_path / "there"
    runner = CliRunner()

    def cli(data_dir: Path, *args: str, **env: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env=_env(s3_server, data_dir, **env))
        return result.exit_code, result.stdout, result.stderr

    assert cli(here, "ingest", "shapes", str(images))[0] == 0
    code, out, err = cli(here, "snapshot", "shapes", url)
    assert code == 0, err
    assert out.strip().endswith(f"bytes uploaded to {url}")
    size = int(out.split("snapshot of ")[1].split(" bytes")[0].replace(",", ""))
    assert s3_server.keys(bucket) == ["cli/shapes.lsnap"]
    assert len(s3_server.read(bucket, "cli/shapes.lsnap")) == size
    code, out, err = cli(there, "restore", url)  # its name comes from the object's manifest
    assert code == 0, err
    assert "shapes: 20 items restored" in out
    query = ("search", "shapes", "a red circle", "-k", "10", "--json")
    (code_a, before, _), (code_b, after, err) = cli(here, *query), cli(there, *query)
    assert code_a == code_b == 0, err
    assert json.loads(after)["results"] == json.loads(before)["results"]
    assert len(json.loads(after)["results"]) == 10
    blobs = sorted(p.name for p in (there / "blobs").rglob("*") if p.is_file())
    assert len(blobs) == 20
    assert blobs == sorted(p.name for p in (here / "blobs").rglob("*") if p.is_file())
    code, _, err = cli(there, "restore", url)
    assert code == 2
    assert "already exists" in err
    assert "--name NEW" in err
    code, out, err = cli(there, "restore", url, "--name", "copy")
    assert code == 0, err
    assert "copy: 20 items restored" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["snapshot", "v", "s3://"], "names no bucket"),
        (["snapshot", "v", "gs://bucket-one/v.lsnap"], "only s3:// URLs are supported"),
        (["snapshot", "v", "s3://bucket-one/a/../v.lsnap"], "'..' segments"),
        (["restore", "s3://bucket-one/"], "names no object"),
        (["snapshot", "v", "s3://ls-no-such-bucket-cli/v.lsnap"], "no bucket"),
        (["restore", "s3://ls-no-such-bucket-cli/v.lsnap"], "no bucket"),
        (["restore", "s3://BUCKET/missing.lsnap", "--name", "w"], "no object"),
        (["restore", "s3://BUCKET/missing.lsnap"], "no object"),
    ],
)
def test_bad_urls_and_missing_objects_are_one_line(
    tmp_path: Path, s3_server: S3Server, args: list[str], needle: str
) -> None:
    bucket = s3_server.new_bucket()
    args = [a.replace("BUCKET", bucket) for a in args]
    runner = CliRunner()
    env = _env(s3_server, tmp_path / "data")
    ingested = runner.invoke(app, ["ingest", "v", str(shapes_folder(tmp_path / "i", 2))], env=env)
    assert ingested.exit_code == 0, ingested.output
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert len(_errors(result.stderr)) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert needle in result.stderr
    assert "Traceback" not in result.output


def test_refused_credentials_are_one_line(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    runner = CliRunner()
    env = _env(s3_server, tmp_path / "data", LATENTSPACE_BACKUP__SECRET_ACCESS_KEY="wrong")
    ingested = runner.invoke(app, ["ingest", "v", str(shapes_folder(tmp_path / "i", 2))], env=env)
    assert ingested.exit_code == 0, ingested.output
    for args in (["snapshot", "v", f"s3://{bucket}/v.lsnap"], ["restore", f"s3://{bucket}/v"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 2, result.output
        assert _errors(result.stderr) == [result.stderr.strip()]
        assert "SignatureDoesNotMatch" in result.stderr
        assert "LATENTSPACE_BACKUP__SECRET_ACCESS_KEY" in result.stderr
    assert "or name the collection with --name" in result.stderr  # the restore's peek
    assert s3_server.keys(bucket) == []
