"""Snapshots to and from S3-compatible storage through the API, against a real S3 server on
loopback (moto's, with signatures checked): a collection goes up, comes back on a fresh
server with the same answers and its images' originals, and every bad URL, missing bucket
or object, refused credential and unreachable store is a problem saying so."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import (
    ADMIN_KEY,
    assert_problem,
    b64,
    free_port,
    image_bytes,
    make_settings,
    tar_members,
    wait_for,
)
from tests.s3_server import S3Server

from latentspace.api import create_app
from latentspace.embedder.models.shapes import ShapeSample
from latentspace.settings import BackupSettings, LimitSettings

QUERIES: list[dict[str, Any]] = [
    {"query": {"text": "a red circle"}, "k": 10},
    {"query": {"item": "s7"}, "k": 10},
    {"query": {"direction": "red-to-blue"}, "k": 10},
    {"query": {"text": "green"}, "k": 10, "filter": {"shape": "triangle"}},
]


@contextmanager
def _server(data_dir: Path, backup: BackupSettings, **overrides: Any) -> Iterator[TestClient]:
    app = create_app(make_settings(data_dir, backup=backup, **overrides))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def _fill(c: TestClient, name: str, model: str, shapes: list[ShapeSample]) -> dict[str, bytes]:
    """Collection ``name`` of ``shapes`` (s0...), a text, a direction; its images by id."""
    assert c.post("/v1/collections", json={"name": name, "model": model}).status_code == 201
    images = {f"s{i}": image_bytes(s.image) for i, s in enumerate(shapes)}
    items: list[dict[str, Any]] = [
        {"id": i, "image": b64(data), "metadata": {"colour": s.colour, "shape": s.shape}}
        for (i, data), s in zip(images.items(), shapes, strict=True)
    ]
    items.append({"id": "t1", "text": "a small red circle"})
    r = c.post(f"/v1/collections/{name}/items", json={"items": items})
    assert r.status_code == 200, r.text
    direction = {
        "name": "red-to-blue",
        "positive": [{"text": "blue"}],
        "negative": [{"text": "red"}],
    }
    assert c.post(f"/v1/collections/{name}/directions", json=direction).status_code == 201
    return images


def _answers(c: TestClient, name: str) -> list[list[tuple[str, float]]]:
    out = []
    for body in QUERIES:
        r = c.post(f"/v1/collections/{name}/search", json=body)
        assert r.status_code == 200, r.text
        out.append([(h["id"], round(h["score"], 5)) for h in r.json()["results"]])
    return out


def _vector(c: TestClient, name: str, item: str) -> np.ndarray:
    r = c.get(f"/v1/collections/{name}/items/{item}", params={"include_vector": True})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["vector"], dtype=np.float32)


def _scratch(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "tmp").iterdir())


def test_a_collection_goes_to_s3_and_comes_back_on_a_fresh_server_with_its_originals(
    tmp_path: Path, shapes: list[ShapeSample], s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    full, lean = f"s3://{bucket}/photos/full.lsnap", f"s3://{bucket}/photos/lean.lsnap"
    backup = s3_server.settings()
    with _server(tmp_path / "source", backup) as source:
        images = _fill(source, "shapes", "tiny-shapes", shapes[:20])
        expected = _answers(source, "shapes")
        r = source.post("/v1/collections/shapes/snapshot", json={"target": full})
        assert r.status_code == 201, r.text
        saved = r.json()
        body = {"target": lean, "originals": False}
        assert source.post("/v1/collections/shapes/snapshot", json=body).status_code == 201
        assert _scratch(tmp_path / "source") == []  # the scratch files went after the upload
    assert saved["target"] == full
    assert saved["manifest"]["counts"] == {"items": 21, "directions": 1, "adapters": 0}
    assert s3_server.keys(bucket) == ["photos/full.lsnap", "photos/lean.lsnap"]
    uploaded = s3_server.read(bucket, "photos/full.lsnap")
    assert len(uploaded) == saved["bytes"]
    members = tar_members(uploaded)
    assert members[0][0] == "manifest.json"
    assert json.loads(members[0][1]) == saved["manifest"]
    carried = {n.removeprefix("originals/"): d for n, d in members if n.startswith("originals/")}
    assert carried == {hashlib.sha256(d).hexdigest(): d for d in images.values()}
    lean_members = tar_members(s3_server.read(bucket, "photos/lean.lsnap"))
    assert not [n for n, _ in lean_members if n.startswith("originals/")]

    with _server(tmp_path / "target", backup) as target:
        # without originals: restored and searchable, but nothing to re-encode from
        r = target.post("/v1/collections/lean/restore", json={"source": lean})
        assert r.status_code == 201, r.text
        assert target.get("/v1/collections/lean/items/s3/image").status_code == 404
        r = target.post("/v1/collections/lean/migrate", json={"model": "tiny-shapes-b"})
        assert_problem(r, 422, "invalid-input", "original")
        # with them: the same answers, the same image files, and a re-encode works
        r = target.post("/v1/collections/shapes/restore", json={"source": full})
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 21
        assert _answers(target, "shapes") == expected
        for item, data in images.items():
            assert target.get(f"/v1/collections/shapes/items/{item}/image").content == data
        _fill(target, "fresh", "tiny-shapes-b", shapes[:20])
        r = target.post(
            "/v1/collections/shapes/migrate", json={"model": "tiny-shapes-b", "adapter": None}
        )
        assert r.status_code == 202, r.text
        job = wait_for(target, r.json()["id"], timeout=120)
        assert job["state"] == "done", job
        assert (job["params"]["result"]["reencoded"], job["params"]["result"]["adapted"]) == (21, 0)
        for item in ("s0", "s11", "s19"):  # what the new model makes of the same files
            np.testing.assert_allclose(
                _vector(target, "shapes", item), _vector(target, "fresh", item), atol=1e-5
            )
        assert _scratch(tmp_path / "target") == []  # the downloads went after the restore


@pytest.fixture
def vectors_server(tmp_path: Path, s3_server: S3Server) -> Iterator[TestClient]:
    """A server of raw-vector collection "v" (3 items) whose backups reach ``s3_server``,
    taking snapshot uploads of at most 64 kB."""
    limits = LimitSettings(max_snapshot_bytes=64_000)
    with _server(tmp_path / "data", s3_server.settings(), limits=limits) as c:
        assert c.post("/v1/collections", json={"name": "v", "dim": 4}).status_code == 201
        items = [{"id": f"v{i}", "vector": [1.0, float(i), 0.5, -1.0]} for i in range(3)]
        assert c.post("/v1/collections/v/items", json={"items": items}).status_code == 200
        yield c


BAD_URLS = [
    ("s3://", "names no bucket"),
    ("s3:///key.lsnap", "names no bucket"),
    ("s3://my-backups", "names no object"),
    ("s3://my-backups/folder/", "names a folder"),
    ("s3://my-backups/../escape.lsnap", "'..' segments"),
    ("s3://my-backups/a/../../b.lsnap", "'..' segments"),
    ("s3://Not_A_Bucket/a.lsnap", "is not a bucket name"),
    ("gs://my-backups/a.lsnap", "only s3:// URLs are supported, not gs://"),
    ("file:///etc/passwd", "only s3:// URLs are supported, not file://"),
    ("my-backups/a.lsnap", "is not an s3:// URL"),
]


def test_bad_urls_missing_buckets_and_objects_are_problems(
    vectors_server: TestClient, s3_server: S3Server, tmp_path: Path
) -> None:
    c = vectors_server
    for url, needle in BAD_URLS:
        r = c.post("/v1/collections/v/snapshot", json={"target": url})
        assert_problem(r, 422, "invalid-input", needle)
        r = c.post("/v1/collections/v2/restore", json={"source": url})
        assert_problem(r, 422, "invalid-input", needle)
    bucket = s3_server.new_bucket()
    for body in ({"file": "a.lsnap", "target": f"s3://{bucket}/a"}, {"target": 7}):
        assert_problem(c.post("/v1/collections/v/snapshot", json=body), 422, "validation-error")
    for body in ({}, {"replace": True}, {"file": "a.lsnap", "source": f"s3://{bucket}/a"}):
        r = c.post("/v1/collections/v2/restore", json=body)
        assert_problem(r, 422, "validation-error", "file", "source")
    missing = "ls-no-such-bucket-here"
    r = c.post("/v1/collections/v/snapshot", json={"target": f"s3://{missing}/v.lsnap"})
    assert_problem(r, 404, "not-found", f"no bucket '{missing}'")
    r = c.post("/v1/collections/v2/restore", json={"source": f"s3://{missing}/v.lsnap"})
    assert_problem(r, 404, "not-found", f"no bucket '{missing}'")
    r = c.post("/v1/collections/v2/restore", json={"source": f"s3://{bucket}/nothing.lsnap"})
    assert_problem(r, 404, "not-found", f"no object s3://{bucket}/nothing.lsnap")
    r = c.post("/v1/collections/nope/snapshot", json={"target": f"s3://{bucket}/nope.lsnap"})
    assert_problem(r, 404, "not-found", "nope")
    # objects that are not whole snapshots are refused, and nothing is restored
    r = c.post("/v1/collections/v/snapshot", json={"target": f"s3://{bucket}/v.lsnap"})
    assert r.status_code == 201, r.text
    whole = s3_server.read(bucket, "v.lsnap")
    assert len(whole) == r.json()["bytes"]
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:  # cut inside the vectors
        cut = tar.getmember("vectors.f32").offset_data + 10
    s3_server.put(bucket, "cut.lsnap", whole[:cut])
    s3_server.put(bucket, "noise.lsnap", bytes(range(256)) * 8)
    s3_server.put(bucket, "empty.lsnap", b"")
    s3_server.put(bucket, "big.lsnap", whole + b"\0" * 70_000)
    for key, status, kind, needle in [
        ("cut.lsnap", 422, "invalid-input", "truncated"),
        ("noise.lsnap", 422, "invalid-input", "not a readable snapshot"),
        ("empty.lsnap", 422, "invalid-input", "is empty"),
        ("big.lsnap", 413, "limit-exceeded", "MAX_SNAPSHOT_BYTES"),
    ]:
        r = c.post("/v1/collections/v2/restore", json={"source": f"s3://{bucket}/{key}"})
        assert_problem(r, status, kind, needle)
    assert [x["name"] for x in c.get("/v1/collections").json()["collections"]] == ["v"]
    r = c.post("/v1/collections/v2/restore", json={"source": f"s3://{bucket}/v.lsnap"})
    assert r.status_code == 201, r.text
    assert c.get("/v1/collections/v2/items/v1", params={"include_vector": True}).json()[
        "vector"
    ] == pytest.approx([1.0, 1.0, 0.5, -1.0])
    assert _scratch(tmp_path / "data") == []


def _refusals(s3: S3Server) -> dict[str, tuple[BackupSettings, str]]:
    closed = f"http://127.0.0.1:{free_port()}"
    return {
        "wrong secret": (s3.settings(secret_access_key="wrong"), "SignatureDoesNotMatch"),
        "unknown key": (
            s3.settings(access_key_id="AKIAUNKNOWNKEY000000", secret_access_key="x"),
            "InvalidAccessKeyId",
        ),
        "no credentials": (
            s3.settings(access_key_id=None, secret_access_key=None),
            "no credentials for the backup store",
        ),
        "unreachable": (
            s3.settings(endpoint_url=closed),
            f"cannot reach the backup store at {closed}",
        ),
    }


@pytest.mark.parametrize("case", ["wrong secret", "unknown key", "no credentials", "unreachable"])
def test_refused_credentials_and_an_unreachable_store_are_503s_that_say_why(
    tmp_path: Path, s3_server: S3Server, case: str
) -> None:
    backup, needle = _refusals(s3_server)[case]
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "there.lsnap", b"anything")
    with _server(tmp_path / "data", backup) as c:
        assert c.post("/v1/collections", json={"name": "v", "dim": 4}).status_code == 201
        r = c.post("/v1/collections/v/snapshot", json={"target": f"s3://{bucket}/v.lsnap"})
        assert_problem(r, 503, "unavailable", needle)
        r = c.post("/v1/collections/v2/restore", json={"source": f"s3://{bucket}/there.lsnap"})
        assert_problem(r, 503, "unavailable", needle)
        assert _scratch(tmp_path / "data") == []
    assert s3_server.keys(bucket) == ["there.lsnap"]


def test_without_keys_in_the_settings_boto3s_own_chain_is_used(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    bucket = s3_server.new_bucket()
    backup = s3_server.settings(access_key_id=None, secret_access_key=None)
    with _server(tmp_path / "data", backup) as c:
        assert c.post("/v1/collections", json={"name": "v", "dim": 4}).status_code == 201
        r = c.post("/v1/collections/v/snapshot", json={"target": f"s3://{bucket}/v.lsnap"})
        assert r.status_code == 201, r.text
    assert s3_server.keys(bucket) == ["v.lsnap"]


def _settled_jobs(c: TestClient, name: str) -> list[dict[str, Any]]:
    # The collection's jobs once there is one and none is queued or running.
    deadline = time.monotonic() + 60
    while True:
        listed: list[dict[str, Any]] = c.get(f"/v1/collections/{name}/jobs").json()["jobs"]
        if listed and all(j["state"] not in ("queued", "running") for j in listed):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


def test_a_server_with_a_schedule_backs_up_its_collections_as_jobs(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    data = tmp_path / "data"
    with _server(data, s3_server.settings()) as c:  # no schedule: nothing is backed up
        assert c.post("/v1/collections", json={"name": "v", "dim": 4}).status_code == 201
        items = [{"id": "x", "vector": [1.0, 2.0, 3.0, 4.0]}]
        assert c.post("/v1/collections/v/items", json={"items": items}).status_code == 200
        assert c.get("/v1/collections/v/jobs").json()["jobs"] == []
    backup = s3_server.settings(schedule="1d", target=f"s3://{bucket}/auto", keep=1)
    with _server(data, backup) as c:  # never backed up: the first check, at start, runs one
        listed = _settled_jobs(c, "v")
    assert len(listed) == 1
    job = listed[0]
    assert (job["kind"], job["state"], job["collection"]) == ("backup", "done", "v"), job
    stamp = datetime.fromisoformat(job["params"]["scheduled_at"]).strftime("%Y%m%dT%H%M%SZ")
    key = f"auto/v/{stamp}.lsnap"
    assert job["params"]["result"]["target"] == f"s3://{bucket}/{key}"
    assert s3_server.keys(bucket) == [key]
    manifest = json.loads(tar_members(s3_server.read(bucket, key))[0][1])
    assert (manifest["collection"]["name"], manifest["counts"]["items"]) == ("v", 1)


def test_a_key_for_some_collections_may_not_use_the_servers_bucket(
    tmp_path: Path, s3_server: S3Server
) -> None:
    # the bucket holds every collection's backups: a tenant's key reaching it could read
    # another tenant's collection back under its own name
    bucket = s3_server.new_bucket()
    keys = f"admin:{ADMIN_KEY},admin@v*:tenant-key"
    with _server(tmp_path / "data", s3_server.settings(), api_keys=keys) as c:
        assert c.post("/v1/collections", json={"name": "v", "dim": 4}).status_code == 201
        r = c.post("/v1/collections/v/snapshot", json={"target": f"s3://{bucket}/v.lsnap"})
        assert r.status_code == 201, r.text  # the full key may
        tenant = {"Authorization": "Bearer tenant-key"}
        r = c.post(
            "/v1/collections/v/snapshot",
            json={"target": f"s3://{bucket}/mine.lsnap"},
            headers=tenant,
        )
        assert_problem(r, 403, "forbidden", "reaches every collection")
        r = c.post(
            "/v1/collections/v2/restore",
            json={"source": f"s3://{bucket}/v.lsnap"},
            headers=tenant,
        )
        assert_problem(r, 403, "forbidden", "reaches every collection")
        assert c.post("/v1/collections/v/snapshot", headers=tenant).status_code == 200
    assert s3_server.keys(bucket) == ["v.lsnap"]


def test_a_server_that_backs_nothing_up_never_loads_boto3(tmp_path: Path) -> None:
    probe = f"""
import sys
from fastapi.testclient import TestClient
from latentspace.api import create_app
from latentspace.cli import app
from latentspace.settings import Settings
settings = Settings(data_dir={str(tmp_path / "data")!r}, auth="off")
with TestClient(create_app(settings, warm=False)) as c:
    assert c.get("/readyz").status_code == 200
print(sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer")))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
