"""Snapshots through the API: one file out, the same collection back, bad files refused."""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.fixtures import (
    ADMIN_KEY,
    assert_problem,
    b64,
    image_bytes,
    make_settings,
    resealed,
    tar_members,
    tar_of,
    wait_for,
)

from latentspace.api import create_app
from latentspace.embedder.models.shapes import ShapeSample
from latentspace.migrations import head_revision
from latentspace.settings import LimitSettings
from latentspace.store.snapshot_file import READABLE_REVISIONS, parts_of

TAR = {"Content-Type": "application/x-tar"}
QUERIES: list[dict[str, Any]] = [
    {"query": {"text": "a red circle"}, "k": 10},
    {"query": {"text": "a blue square"}, "k": 10},
    {"query": {"item": "s7"}, "k": 10},
    {"query": {"direction": "red-to-blue"}, "k": 10},
    {"query": {"text": "green"}, "k": 10, "filter": {"shape": "triangle"}},
]


def _client(data_dir: Path, engine: Engine | None = None) -> Iterator[TestClient]:
    app = create_app(make_settings(data_dir), engine=engine)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


@pytest.fixture
def source(tmp_path: Path, shapes: list[ShapeSample]) -> Iterator[TestClient]:
    """A SQLite server with a tiny-shapes collection: 60 images, 2 texts, a direction and
    one deleted item (which a snapshot leaves out)."""
    for c in _client(tmp_path / "source"):
        assert c.post("/v1/collections", json={"name": "shapes", "model": "tiny-shapes"}).is_success
        items: list[dict[str, Any]] = [
            {
                "id": f"s{i}",
                "image": b64(image_bytes(s.image)),
                "metadata": {"colour": s.colour, "shape": s.shape, "tags": ["é", i]},
            }
            for i, s in enumerate(shapes[:60])
        ]
        items += [{"id": "t1", "text": "a small red circle", "uri": "notes/t1.txt"}]
        items += [{"id": "t2", "text": "gone soon"}]
        r = c.post("/v1/collections/shapes/items", json={"items": items})
        assert r.status_code == 200, r.text
        assert c.delete("/v1/collections/shapes/items/t2").status_code == 204
        direction = {"name": "red-to-blue", "positive": [{"text": "blue"}]}
        direction["negative"] = [{"text": "red"}]
        assert c.post("/v1/collections/shapes/directions", json=direction).status_code == 201
        yield c


def _answers(c: TestClient, name: str) -> list[list[tuple[str, float]]]:
    out = []
    for body in QUERIES:
        r = c.post(f"/v1/collections/{name}/search", json=body)
        assert r.status_code == 200, r.text
        out.append([(h["id"], round(h["score"], 5)) for h in r.json()["results"]])
    return out


def _snapshot(c: TestClient, name: str = "shapes", **body: Any) -> bytes:
    r = c.post(f"/v1/collections/{name}/snapshot", json=body or None)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    return r.content


def test_snapshot_restores_the_same_answers_on_each_database(
    source: TestClient, tmp_path: Path, engine: Engine
) -> None:
    # SQLite -> file -> a fresh server on SQLite or PostgreSQL: the same top-10 for every
    # stored query (text, stored item, direction, filtered), the same items and fields.
    expected = _answers(source, "shapes")
    data = _snapshot(source)
    for target in _client(tmp_path / "target", engine):
        r = target.post("/v1/collections/shapes/restore", content=data, headers=TAR)
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 61  # the deleted item stays out
        assert _answers(target, "shapes") == expected
        item = target.get("/v1/collections/shapes/items/t1").json()
        assert (item["text"], item["uri"]) == ("a small red circle", "notes/t1.txt")
        s3 = target.get("/v1/collections/shapes/items/s3").json()
        assert s3["metadata"]["tags"] == ["é", 3]
        assert target.get("/v1/collections/shapes/items/t2").status_code == 404
        names = [
            d["name"] for d in target.get("/v1/collections/shapes/directions").json()["directions"]
        ]
        assert names == ["red-to-blue"]
        # the keyword leg is rebuilt from the restored texts
        r = target.post(
            "/v1/collections/shapes/search",
            json={"query": {"keyword": "small red circle"}, "k": 1},
        )
        assert r.status_code == 200, r.text
        assert [h["id"] for h in r.json()["results"]] == ["t1"]


def test_restore_under_a_new_name_and_replace(source: TestClient) -> None:
    data = _snapshot(source)
    r = source.post("/v1/collections/shapes/restore", content=data, headers=TAR)
    assert_problem(r, 409, "conflict", "already exists")
    r = source.post("/v1/collections/copy/restore", content=data, headers=TAR)
    assert r.status_code == 201, r.text
    assert _answers(source, "copy") == _answers(source, "shapes")
    # replace: the collection is the snapshot's again, the later write gone
    extra = {"items": [{"id": "late", "text": "written after the snapshot"}]}
    assert source.post("/v1/collections/shapes/items", json=extra).status_code == 200
    r = source.post("/v1/collections/shapes/restore?replace=true", content=data, headers=TAR)
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 61
    assert source.get("/v1/collections/shapes/items/late").status_code == 404
    assert _answers(source, "shapes") == _answers(source, "copy")


def test_snapshot_saved_on_the_server_and_restored_by_name(source: TestClient) -> None:
    r = source.post("/v1/collections/shapes/snapshot", json={"file": "nightly.lsnap"})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["manifest"]["counts"] == {"items": 61, "directions": 1, "adapters": 0}
    assert saved["manifest"]["schema_revision"] == head_revision()
    r = source.post("/v1/collections/n2/restore", json={"file": "nightly.lsnap"})
    assert r.status_code == 201, r.text
    assert r.json()["count"] == 61
    r = source.post("/v1/collections/shapes/restore", json={"file": "missing.lsnap"})
    assert_problem(r, 404, "not-found", "no snapshot file")
    r = source.post("/v1/collections/shapes/restore", json={"file": "../etc/passwd"})
    assert r.status_code == 422
    r = source.post("/v1/collections/shapes/snapshot", json={"file": "a/b.lsnap"})
    assert r.status_code == 422


# -- bad files: refused with a message, nothing changed -----------------------------------


def _last_data_offset(data: bytes) -> int:
    # Where the last member's bytes begin: a cut just after it leaves that part short.
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()[-1].offset_data


def _flip_byte(members: list[tuple[str, bytes]]) -> bytes:
    name, body = members[2]  # vectors.f32
    changed = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
    return tar_of([*members[:2], (name, changed), *members[3:]])


def _bad_vector(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    parts["vectors.f32"] = b"\x00\x00\xc0\x7f" + parts["vectors.f32"][4:]  # a NaN


def _future_revision(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    manifest["schema_revision"] = "9999"


def _bad_item(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    lines = parts["items.jsonl"].decode().splitlines()
    doc = json.loads(lines[5])
    doc["kind"] = "sound"
    lines[5] = json.dumps(doc)
    parts["items.jsonl"] = ("\n".join(lines) + "\n").encode()


def _count_off(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    manifest["counts"]["items"] += 1


def _bad_adapter(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
    adapter = {
        "source_model": "tiny-shapes-b",
        "source_fingerprint": "a" * 64,
        "target_fingerprint": manifest["collection"]["fingerprint"],
        "kind": "rotation",
        "dim_in": 64,
        "dim_out": 64,
        "matrix": "",
        "bias": "",
        "recall_at_10": 0.9,
        "fitted_on": 100,
        "created_at": "2026-12-06T00:00:00+00:00",
    }
    parts["adapters.jsonl"] = (json.dumps(adapter) + "\n").encode()
    manifest["counts"]["adapters"] = 1


def _poisoned(field: str, value: Any) -> Any:
    # one item of a resealed snapshot given what the API refuses at the door
    def poison(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
        lines = parts["items.jsonl"].decode().splitlines()
        doc = json.loads(lines[5])
        doc[field] = value
        lines[5] = json.dumps(doc)
        parts["items.jsonl"] = ("\n".join(lines) + "\n").encode()

    return poison


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


def _forged_index(kind: str, params: dict[str, Any]) -> Any:
    # a manifest rewritten by hand, its checksums recomputed (they are integrity, not
    # authenticity): index settings no collection could be created with
    def forge(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
        manifest["collection"]["index_kind"] = kind
        manifest["collection"]["index_params"] = params

    return forge


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda data, m: data[: len(data) // 2], "truncated"),
        (lambda data, m: data[: _last_data_offset(data) + 10], "truncated"),
        (lambda data, m: b"not a tar file at all" * 100, "not a readable snapshot"),
        (lambda data, m: _flip_byte(m), "vectors.f32 fails its sha256"),
        (lambda data, m: tar_of([m[0], m[1], *m[3:]]), "truncated: vectors.f32 missing"),
        (lambda data, m: tar_of([m[1], m[0], m[2], m[3]]), "first member is not manifest.json"),
        (lambda data, m: tar_of([*m, ("extra.bin", b"x")]), "unexpected member 'extra.bin'"),
        (lambda data, m: resealed(m, _bad_vector), "snapshot vector 0 is not finite"),
        (lambda data, m: resealed(m, _future_revision), "schema revision '9999' is unknown"),
        (lambda data, m: resealed(m, _bad_item), "line 6: kind 'sound'"),
        (lambda data, m: resealed(m, _count_off), "vectors.f32 holds"),
        (lambda data, m: resealed(m, _bad_adapter), "kind must be procrustes or affine"),
        (lambda data, m: resealed(m, _forged_index("hnsw", {"m": 0})), "'m' is not a collection"),
        (lambda data, m: resealed(m, _forged_index("ivf", {"nlist": 0})), "'nlist' is not a"),
        (lambda data, m: resealed(m, _forged_index("hnsw", {"rescore": "abc"})), "rescore must"),
        (lambda data, m: resealed(m, _poisoned("metadata", {"x": math.nan})), "not a JSON number"),
        (lambda data, m: resealed(m, _poisoned("text", "a \ud800 b")), "lone surrogate"),
        (lambda data, m: resealed(m, _poisoned("metadata", _nested(300))), "nesting"),
        (lambda data, m: resealed(m, _poisoned("text", "a\x00b")), "NUL"),
        (lambda data, m: resealed(m, _poisoned("text", "x" * 100_001)), "characters"),
        (lambda data, m: resealed(m, _poisoned("metadata", {"x": "y" * 1_100_000})), "bytes"),
        (lambda data, m: resealed(m, _poisoned("sha256", "z" * 64)), "sha256 must be 64 hex"),
        (lambda data, m: resealed(m, _poisoned("uri", "a\x00b")), "uri"),
    ],
    ids=[
        "half",
        "last-part-cut",
        "not-tar",
        "flipped-byte",
        "missing-part",
        "manifest-not-first",
        "extra-member",
        "nan-vector",
        "future-revision",
        "bad-kind",
        "count-mismatch",
        "bad-adapter",
        "forged-hnsw-m",
        "forged-ivf-nlist",
        "forged-rescore",
        "nan-metadata",
        "lone-surrogate",
        "deep-metadata",
        "nul-text",
        "long-text",
        "large-metadata",
        "non-hex-sha256",
        "nul-uri",
    ],
)
def test_a_damaged_snapshot_is_refused_and_changes_nothing(
    source: TestClient, spoil: Any, message: str
) -> None:
    data = _snapshot(source, originals=False)  # the parts alone: the spoilers count members
    bad = spoil(data, tar_members(data))
    before = source.get("/v1/collections").json()
    for path in ("fresh/restore", "shapes/restore?replace=true"):
        r = source.post(f"/v1/collections/{path}", content=bad, headers=TAR)
        assert_problem(r, 422, "invalid-input", message)
    assert source.get("/v1/collections").json() == before
    assert source.get("/v1/collections/fresh").status_code == 404


@pytest.mark.parametrize("previous", READABLE_REVISIONS[-3:-1])
def test_a_snapshot_from_a_previous_schema_revision_restores(
    source: TestClient, previous: str
) -> None:
    # Revision 0003 had no perceptual hashes or image sizes on items (0004 added them),
    # nor adapters (0005): its snapshots lack those, and they restore as null or none.
    assert READABLE_REVISIONS[-1] == head_revision()
    added_in = {"phash": "0004", "pixels": "0004", "size_bytes": "0004"}

    def older(manifest: dict[str, Any], parts: dict[str, bytes]) -> None:
        manifest["schema_revision"] = previous
        for name in set(parts) - set(parts_of(previous)):
            del parts[name]
            manifest["counts"].pop(name.removesuffix(".jsonl"), None)
        docs = [json.loads(line) for line in parts["items.jsonl"].decode().splitlines()]
        for doc in docs:
            for key, since in added_in.items():
                if previous < since:
                    doc.pop(key, None)
        parts["items.jsonl"] = "".join(json.dumps(d) + "\n" for d in docs).encode()

    expected = _answers(source, "shapes")
    data = resealed(tar_members(_snapshot(source, originals=False)), older)
    assert [name for name, _ in tar_members(data)][-1] == "directions.jsonl"
    r = source.post("/v1/collections/old/restore", content=data, headers=TAR)
    assert r.status_code == 201, r.text
    assert _answers(source, "old") == expected
    for item_id in ("s1", "t1"):
        old = source.get(f"/v1/collections/old/items/{item_id}").json()
        now = source.get(f"/v1/collections/shapes/items/{item_id}").json()
        assert old == now
    assert source.get("/v1/collections/old/adapters").json() == {"adapters": []}


def test_restore_needs_a_snapshot_media_type(source: TestClient) -> None:
    r = source.post(
        "/v1/collections/shapes/restore", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert_problem(r, 415, "unsupported-media-type", "application/x-tar")
    r = source.post("/v1/collections/shapes/restore", json={"file": 3})
    assert r.status_code == 422
    r = source.post("/v1/collections/nope/snapshot")
    assert_problem(r, 404, "not-found", "nope")


def test_uploads_have_their_own_size_limit(tmp_path: Path, source: TestClient) -> None:
    # A snapshot upload is streamed to disk: max_body_bytes does not bound it, and
    # max_snapshot_bytes does (413 as it arrives, with or without a Content-Length).
    data = _snapshot(source)
    limits = LimitSettings(max_body_bytes=1000, max_snapshot_bytes=len(data) - 1)
    app = create_app(make_settings(tmp_path / "small", limits=limits))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        r = c.post("/v1/collections/shapes/restore", content=data, headers=TAR)
        assert_problem(r, 413, "limit-exceeded", "max_snapshot_bytes")
        r = c.post("/v1/collections/shapes/restore", content=iter([data]), headers=TAR)  # chunked
        assert_problem(r, 413, "limit-exceeded", "max_snapshot_bytes")
        assert c.get("/v1/collections").json()["collections"] == []
    limits = LimitSettings(max_body_bytes=1000, max_snapshot_bytes=len(data))
    app = create_app(make_settings(tmp_path / "fits", limits=limits))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        r = c.post("/v1/collections/shapes/restore", content=data, headers=TAR)
        assert r.status_code == 201, r.text
        assert not list((tmp_path / "fits" / "tmp").iterdir())  # the upload is removed


def test_a_snapshot_carries_the_originals_so_a_restore_elsewhere_serves_and_migrates(
    tmp_path: Path, source: TestClient
) -> None:
    data = _snapshot(source)  # an image collection: originals by default
    members = dict(tar_members(data))
    originals = [n for n in members if n.startswith("originals/")]
    assert len(originals) == 60
    manifest = json.loads(members["manifest.json"])
    assert manifest["originals"] == {
        "count": 60,
        "bytes": sum(len(members[n]) for n in originals),
    }
    image = source.get("/v1/collections/shapes/items/s3/image").content
    assert len(_snapshot(source, originals=False)) < len(data) / 2
    for c in _client(tmp_path / "elsewhere"):  # a fresh data directory: no blobs of its own
        r = c.post("/v1/collections/shapes/restore", content=data, headers=TAR)
        assert r.status_code == 201, r.text
        assert _answers(c, "shapes") == _answers(source, "shapes")
        assert c.get("/v1/collections/shapes/items/s3/image").content == image
        r = c.post("/v1/collections/shapes/migrate", json={"model": "tiny-shapes-b"})
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["id"], timeout=120)
        assert job["state"] == "done", job
        result = job["params"]["result"]
        assert result["reencoded"] == 61  # every image from its original, and t1
        assert result["adapted"] == 0


def test_without_originals_a_restore_elsewhere_has_no_images_to_serve(
    tmp_path: Path, source: TestClient
) -> None:
    data = _snapshot(source, originals=False)
    assert not [n for n, _ in tar_members(data) if n.startswith("originals/")]
    for c in _client(tmp_path / "elsewhere"):
        assert c.post("/v1/collections/shapes/restore", content=data, headers=TAR).is_success
        r = c.get("/v1/collections/shapes/items/s3/image")
        assert_problem(r, 404, "not-found", "has no stored image")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda name, body: (name, body + b"x"), "fails its sha256"),
        (lambda name, body: ("originals/abc", body), "unexpected member 'originals/abc'"),
        (lambda name, body: None, "holds 59 originals"),
    ],
    ids=["altered", "bad-name", "one-missing"],
)
def test_a_forged_original_is_refused(
    tmp_path: Path, source: TestClient, spoil: Any, message: str
) -> None:
    members = tar_members(_snapshot(source))
    first = next(i for i, (n, _) in enumerate(members) if n.startswith("originals/"))
    spoiled = spoil(*members[first])
    members[first : first + 1] = [] if spoiled is None else [spoiled]
    for c in _client(tmp_path / "elsewhere"):
        r = c.post("/v1/collections/shapes/restore", content=tar_of(members), headers=TAR)
        assert_problem(r, 422, "invalid-input", message)
        assert c.get("/v1/collections/shapes").status_code == 404
        assert not (tmp_path / "elsewhere" / "blobs").exists()  # nothing written


@pytest.mark.parametrize("originals", ["yes", 1, [True]])
def test_originals_takes_a_boolean_only(source: TestClient, originals: Any) -> None:
    r = source.post("/v1/collections/shapes/snapshot", json={"originals": originals})
    assert_problem(r, 422, "validation-error", "body.originals", "valid boolean")
