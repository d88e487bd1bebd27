"""API keys and scopes: who may call what, and when the server refuses to serve at all.

Keys come from ``LATENTSPACE_API_KEYS`` (plain or ``sha256:HEX``; read, write or admin
scope; keys that reach some collections only are tested in test_scopes.py); with auth on
and no keys only loopback clients are served, and ``latentspace serve`` refuses a
non-loopback host; ``LATENTSPACE_AUTH=off`` turns checking off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from tests.fixtures import ADMIN_KEY, READ_KEY, WRITE_KEY, image_bytes, make_settings
from typer.testing import CliRunner

from latentspace.api import create_app
from latentspace.errors import InvalidInput
from latentspace.settings import Settings

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
C = "/v1/collections/c"
PNG = image_bytes(Image.new("RGB", (16, 16), "green"))
TERMS = {"positive": [{"text": "blue"}], "negative": [{"text": "red"}]}


def assert_problem(r: httpx.Response, status: int, kind: str, needle: str) -> None:
    """``r`` is a problem of ``status`` and ``kind`` whose detail contains ``needle`` (on the
    OpenAI-compatible routes: OpenAI's error, whose code is the problem's kind)."""
    assert r.status_code == status, r.text
    if r.request.url.path in ("/v1/embeddings", "/v1/models"):
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["code"] == kind, error
        assert needle.lower() in error["message"].lower(), error
        return
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"/problems/{kind}", body
    assert needle.lower() in body["detail"].lower(), body["detail"]


@contextmanager
def started(settings: Settings) -> Iterator[TestClient]:
    """A client of a started app that sends no key unless told."""
    with TestClient(create_app(settings)) as c:
        yield c


def seed(c: TestClient) -> TestClient:
    """Collection "c" (tiny-shapes) with items a, b, document "doc" and direction "d"."""
    r = c.post("/v1/collections", json={"name": "c", "model": "tiny-shapes"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    items = [{"id": "a", "text": "a red circle", "metadata": {"k": 1}}, {"id": "b", "text": "blue"}]
    assert c.post(f"{C}/items", json={"items": items}, headers=ADMIN).status_code == 200
    documents = {"documents": [{"id": "doc", "text": "A green star. A red square."}]}
    assert c.post(f"{C}/documents", json=documents, headers=ADMIN).status_code == 200
    r = c.post(f"{C}/directions", json={"name": "d", **TERMS}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return c


@pytest.fixture
def anon(settings: Settings) -> Iterator[TestClient]:
    """A started app (keys configured), nothing stored."""
    with started(settings) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One seeded app shared by the tests that must change nothing (each checks it did not)."""
    with started(make_settings(tmp_path_factory.mktemp("auth"))) as c:
        yield seed(c)


@pytest.fixture
def own_seeded(anon: TestClient) -> TestClient:
    """A seeded app of this test's own, for tests that write."""
    return seed(anon)


def snapshot(c: TestClient) -> dict[str, Any]:
    """What an admin sees of the collections, items and directions."""
    listing = c.get("/v1/collections", headers=ADMIN).json()["collections"]
    return {
        "collections": [(x["name"], x["count"]) for x in listing],
        "items": c.get(f"{C}/items", headers=ADMIN).json()["items"],
        "directions": c.get(f"{C}/directions", headers=ADMIN).json()["directions"],
    }


READ_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/collections", {}),
    ("GET", C, {}),
    ("POST", f"{C}/search", {"json": {"query": {"text": "red"}, "k": 2}}),
    ("GET", f"{C}/items", {}),
    ("GET", f"{C}/items/a", {}),
    ("GET", f"{C}/directions", {}),
    ("POST", f"{C}/path", {"json": {"from": {"item": "a"}, "to": {"item": "b"}, "steps": 2}}),
    ("GET", f"{C}/duplicates", {}),
    ("POST", f"{C}/duplicates/check", {"json": {"text": "a red circle"}}),
    ("GET", f"{C}/trash", {}),
    ("POST", "/v1/embeddings", {"json": {"model": "tiny-shapes", "input": "red"}}),
    ("GET", "/v1/models", {}),
    ("GET", "/metrics", {}),
]
# item writes: a write key may, a read key may not
WRITE_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", f"{C}/items", {"json": {"items": [{"id": "z", "text": "green"}]}}),
    ("POST", f"{C}/images", {"files": [("files", ("z.png", b"x", "image/png"))]}),
    ("PATCH", f"{C}/items/a", {"json": {"metadata": {"k": 2}}}),
    ("DELETE", f"{C}/items/a", {}),
    ("POST", f"{C}/documents", {"json": {"documents": [{"id": "x", "text": "words"}]}}),
    ("DELETE", f"{C}/documents/doc", {}),
    ("POST", f"{C}/duplicates/resolve", {"json": {"keep": ["b"], "trash": ["z"]}}),
    ("POST", f"{C}/trash/restore", {"json": {"ids": ["z"]}}),
]
# the collection itself: an admin key only
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/collections", {"json": {"name": "new", "model": "tiny-shapes"}}),
    ("DELETE", C, {}),
    ("POST", f"{C}/directions", {"json": {"name": "e", **TERMS}}),
    ("DELETE", f"{C}/directions/d", {}),
    ("POST", f"{C}/snapshot", {"json": {"file": "x.lsnap"}}),
    ("POST", "/v1/collections/copy/restore", {"json": {"file": "x.lsnap"}}),
    ("POST", f"{C}/map", {"json": {"method": "pca"}}),
]


def _ids(routes: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [f"{m} {p.removeprefix('/v1/').removeprefix('collections/')}" for m, p, _ in routes]


ALL_ROUTES = READ_ROUTES + WRITE_ROUTES + ADMIN_ROUTES


@pytest.mark.parametrize(("method", "path", "kwargs"), ALL_ROUTES, ids=_ids(ALL_ROUTES))
def test_no_key_is_401_with_a_challenge(
    seeded: TestClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    before = snapshot(seeded)
    r = seeded.request(method, path, **kwargs)
    assert_problem(r, 401, "unauthorized", "missing API key")
    assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-key",
        f"Bearer {READ_KEY}x",
        f"Bearer {hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}",
        f"Basic {ADMIN_KEY}",
        ADMIN_KEY,
        "Bearer",
    ],
    ids=["wrong", "read-key-plus-one", "digest-of-admin", "basic-scheme", "no-scheme", "empty"],
)
def test_wrong_key_is_401(seeded: TestClient, authorization: str) -> None:
    before = snapshot(seeded)
    for method, path, kwargs in (READ_ROUTES[0], ADMIN_ROUTES[0]):
        r = seeded.request(method, path, headers={"Authorization": authorization}, **kwargs)
        assert_problem(r, 401, "unauthorized", "API key")
        assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(seeded) == before


@pytest.mark.parametrize(("method", "path", "kwargs"), READ_ROUTES, ids=_ids(READ_ROUTES))
def test_read_key_reads(seeded: TestClient, method: str, path: str, kwargs: dict[str, Any]) -> None:
    r = seeded.request(method, path, headers=READ, **kwargs)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "key", "needed"),
    [(*route, READ, "a write key") for route in WRITE_ROUTES]
    + [(*route, key, "an admin key") for route in ADMIN_ROUTES for key in (READ, WRITE)],
    ids=_ids(WRITE_ROUTES) + [f"{i}-{k}" for i in _ids(ADMIN_ROUTES) for k in ("read", "write")],
)
def test_a_key_short_of_the_scope_changes_nothing(
    seeded: TestClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    key: dict[str, str],
    needed: str,
) -> None:
    before = snapshot(seeded)
    r = seeded.request(method, path, headers=key, **kwargs)
    assert_problem(r, 403, "forbidden", f"needs {needed}")
    assert "www-authenticate" not in r.headers
    assert snapshot(seeded) == before


def test_admin_key_does_everything(own_seeded: TestClient) -> None:
    seeded = own_seeded
    for method, path, kwargs in READ_ROUTES:
        r = seeded.request(method, path, headers=ADMIN, **kwargs)
        assert r.status_code == 200, (path, r.text)
    create, delete, *admin = ADMIN_ROUTES
    writes = [create, *WRITE_ROUTES[:4], *admin[:2], *WRITE_ROUTES[4:], *admin[2:]]
    writes[2] = ("POST", f"{C}/images", {"files": [("files", ("z.png", PNG, "image/png"))]})
    for (method, path, kwargs), status in zip(
        [*writes, delete],
        [201, 200, 200, 200, 204, 201, 204, 200, 204, 200, 200, 201, 201, 202, 204],
        strict=True,
    ):
        r = seeded.request(method, path, headers=ADMIN, **kwargs)
        assert r.status_code == status, (method, path, r.text)
    listing = seeded.get("/v1/collections", headers=ADMIN).json()["collections"]
    assert [x["name"] for x in listing] == ["copy", "new"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["none", "wrong"])
def test_health_needs_no_key(anon: TestClient, path: str, headers: dict[str, str]) -> None:
    r = anon.get(path, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


def test_metrics_needs_a_key(anon: TestClient) -> None:
    assert_problem(anon.get("/metrics"), 401, "unauthorized", "missing API key")
    r = anon.get("/metrics", headers=READ)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")


def test_keys_given_as_sha256_digests(tmp_path: Path) -> None:
    admin_secret, read_secret = "plain-admin-secret", "plain-read-secret"
    admin_digest = hashlib.sha256(admin_secret.encode()).hexdigest()
    read_digest = hashlib.sha256(read_secret.encode()).hexdigest().upper()
    settings = make_settings(tmp_path, api_keys=f"sha256:{admin_digest},read:sha256:{read_digest}")
    with TestClient(create_app(settings)) as c:
        as_admin = {"Authorization": f"Bearer {admin_secret}"}
        as_read = {"Authorization": f"Bearer {read_secret}"}
        body = {"name": "raw", "dim": 4}
        assert c.post("/v1/collections", json=body, headers=as_admin).status_code == 201
        assert c.get("/v1/collections/raw", headers=as_read).status_code == 200
        r = c.post("/v1/collections", json={"name": "x", "dim": 4}, headers=as_read)
        assert_problem(r, 403, "forbidden", "admin")
        for token in (admin_digest, f"sha256:{admin_digest}", ADMIN_KEY):
            r = c.get("/v1/collections", headers={"Authorization": f"Bearer {token}"})
            assert_problem(r, 401, "unauthorized", "invalid API key")


def _start(app: FastAPI, host: str) -> TestClient:
    # The client's address is `host`; it asks for the server by its loopback name, as a
    # local browser or curl does (other Host names are refused in this mode: rebinding).
    return TestClient(app, client=(host, 50000), base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize("host", ["testclient", "10.1.2.3", "192.168.0.7", "2001:db8::1"])
def test_no_keys_refuses_non_loopback_clients(tmp_path: Path, host: str) -> None:
    app = create_app(make_settings(tmp_path, api_keys=""))
    with _start(app, host) as c:
        for headers in ({}, ADMIN):
            r = c.get("/v1/collections", headers=headers)
            assert_problem(r, 403, "forbidden", "LATENTSPACE_API_KEYS")
        r = c.post("/v1/collections", json={"name": "x", "dim": 4})
        assert_problem(r, 403, "forbidden", "LATENTSPACE_API_KEYS")
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_no_keys_serves_loopback_clients(tmp_path: Path, host: str) -> None:
    app = create_app(make_settings(tmp_path, api_keys=""))
    with _start(app, host) as c:
        assert c.post("/v1/collections", json={"name": "x", "dim": 4}).status_code == 201
        assert c.get("/v1/collections/x").status_code == 200


@pytest.mark.parametrize("keys", ["", f"read:{READ_KEY}"], ids=["no-keys", "with-keys"])
def test_auth_off_allows_everyone(tmp_path: Path, keys: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, auth="off", api_keys=keys))) as c:
        assert c.post("/v1/collections", json={"name": "x", "dim": 4}).status_code == 201
        assert c.get("/v1/collections").status_code == 200
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 200


@pytest.mark.parametrize(
    "keys",
    [
        "sha256:nothex",
        "sha256:" + "0" * 63,
        "sha256:" + "g" * 64,
        "read:sha256:abc",
        "admin:",
        f"admin:{ADMIN_KEY},read:",
    ],
    ids=["not-hex", "63-digits", "g-digits", "read-short", "empty-admin", "empty-read"],
)
def test_malformed_key_setting_fails_create_app(tmp_path: Path, keys: str) -> None:
    with pytest.raises(InvalidInput, match="API key"):
        create_app(make_settings(tmp_path, api_keys=keys))


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Environment for ``latentspace serve``; uvicorn's server only records that it ran."""
    import uvicorn

    import latentspace.logs

    calls: list[dict[str, Any]] = []

    def record(server: uvicorn.Server, sockets: object = None) -> None:
        calls.append({"host": server.config.host, "port": server.config.port})

    monkeypatch.setattr(uvicorn.Server, "run", record)
    monkeypatch.setattr(latentspace.logs, "configure_logging", lambda *a, **kw: None)
    monkeypatch.setenv("LATENTSPACE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LATENTSPACE_ENCODER__DEVICE", "cpu")
    return calls


@pytest.mark.parametrize("keys", ["", "   "], ids=["empty", "blank"])
def test_serve_refuses_public_host_without_keys(
    serve_env: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    from latentspace.cli import app

    monkeypatch.setenv("LATENTSPACE_API_KEYS", keys)
    monkeypatch.setenv("LATENTSPACE_AUTH", "on")
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code != 0
    assert "LATENTSPACE_API_KEYS" in result.output
    assert serve_env == []  # refused before uvicorn was started


@pytest.mark.parametrize(
    ("host", "auth", "keys"),
    [("127.0.0.1", "on", ""), ("0.0.0.0", "off", ""), ("0.0.0.0", "on", f"admin:{ADMIN_KEY}")],
    ids=["loopback", "auth-off", "with-keys"],
)
def test_serve_starts_when_safe(
    serve_env: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    auth: str,
    keys: str,
) -> None:
    from latentspace.cli import app

    monkeypatch.setenv("LATENTSPACE_API_KEYS", keys)
    monkeypatch.setenv("LATENTSPACE_AUTH", auth)
    result = CliRunner().invoke(app, ["serve", "--host", host, "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert [(c["host"], c["port"]) for c in serve_env] == [(host, 8123)]


@pytest.mark.parametrize(
    "body",
    [b'{"items": [{"id": 1, "vector": "no"}]}', b'{"items": ['],
    ids=["schema-invalid", "broken-json"],
)
def test_no_key_is_401_whatever_the_body(seeded: TestClient, body: bytes) -> None:
    before = snapshot(seeded)
    r = seeded.post(f"{C}/items", content=body, headers={"content-type": "application/json"})
    assert_problem(r, 401, "unauthorized", "missing API key")
    assert snapshot(seeded) == before
