"""What more than one test module shares: the database fixtures, and plain helpers.

The fixtures (``engine``, ``opened``, ``space``) are re-exported by ``tests/conftest.py``,
where pytest finds them; everything else is imported from here by the tests that use it.
A test module imports no other test module.

    database     engine, opened, space (each database kind; SQLite always, PostgreSQL when
                 LATENTSPACE_TEST_POSTGRES_URL is set)
    service      DIM, vectors, items, reopen, count: a collection's data and restarts
    settings     ADMIN_KEY, READ_KEY, WRITE_KEY, make_settings: a test server's settings and keys
    images       image_bytes, b64, shapes_folder
    HTTP         free_port, serve (a real uvicorn server), assert_problem, unchanged,
                 wait_for, release_on_stop, pair (two servers on one database)
    references   bm25_reference (BM25 from its definition), rag_corpus (bench/rag_corpus.py)
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import math
import os
import re
import socket
import sys
import tarfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
import Stemmer
import uvicorn
from bm25s.stopwords import STOPWORDS_EN
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, text

from latentspace.api import create_app
from latentspace.api.app import served
from latentspace.embedder.models.shapes import generate
from latentspace.runner import JobRunner
from latentspace.service import Context, collections, lifecycle
from latentspace.settings import ClusterSettings, EncoderSettings, Settings
from latentspace.store.engine import make_engine
from latentspace.store.repository import ItemInput

ROOT = Path(__file__).resolve().parents[1]

# -- database -----------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("LATENTSPACE_TEST_POSTGRES_URL", "")


def _postgres_engine() -> Iterator[Engine]:
    if not POSTGRES_URL:
        pytest.skip("set LATENTSPACE_TEST_POSTGRES_URL to run against PostgreSQL")
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"ls_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        yield engine
        engine.dispose()
    else:
        yield from _postgres_engine()


@pytest.fixture
def opened() -> Iterator[list[Context]]:
    """Every context a test opens; each is stopped at the end (its threads joined, its
    database connections closed before the database goes, its data directory given up)."""
    contexts: list[Context] = []
    yield contexts
    for ctx in contexts:
        lifecycle.stop(ctx, save=False)


@pytest.fixture
def space(engine: Engine, tmp_path: Path, opened: list[Context]) -> Context:
    """A started service context on a fresh data directory, on each database kind."""
    settings = Settings(data_dir=tmp_path / "data", database_url=engine.url.render_as_string(False))
    opened.append(lifecycle.start(settings, engine=engine))
    return opened[-1]


# -- service: a collection's data and restarts ---------------------------------------------

DIM = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(x: np.ndarray, start: int = 0) -> list[ItemInput]:
    return [
        ItemInput(f"v{start + i}", "vector", f"sha{start + i}", v, metadata={"n": start + i})
        for i, v in enumerate(x)
    ]


def reopen(space: Context, opened: list[Context]) -> Context:
    if space.lock is not None:  # as if the process that held the data directory had died
        space.lock.release()
    opened.append(lifecycle.start(space.settings, engine=space.engine))
    return opened[-1]


def count(space: Context, name: str) -> int:
    return collections.stats(space, name).count


# -- settings and keys of a test server ---------------------------------------------------

ADMIN_KEY = "test-admin-key"
READ_KEY = "test-read-key"
WRITE_KEY = "test-write-key"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test server: CPU, two keys, small limits where a test needs them."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "api_keys": f"admin:{ADMIN_KEY},read:{READ_KEY},write:{WRITE_KEY}",
        "encoder": EncoderSettings(device="cpu", decode_workers=0, batch_size=64),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# -- images --------------------------------------------------------------------------------


def image_bytes(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    """An image encoded as ``fmt``."""
    out = io.BytesIO()
    image.save(out, format=fmt, quality=quality)
    return out.getvalue()


def b64(data: bytes) -> str:
    """Base64 text of bytes."""
    return base64.b64encode(data).decode()


def shapes_folder(folder: Path, count: int = 40) -> Path:
    """``folder`` filled with ``count`` tiny-shapes images named by colour and shape."""
    folder.mkdir()
    for i, sample in enumerate(generate(count, seed=5)):
        sample.image.save(folder / f"{i:02d}-{sample.colour}-{sample.shape}.png")
    return folder


# -- HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Start the app with uvicorn on 127.0.0.1 in a thread of the test process; yields its
    base URL; stops it on exit."""
    port = free_port()
    app = create_app(settings, url=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(  # as `latentspace serve` runs it
        served(app),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def assert_problem(r: httpx.Response, status: int, kind: str, *needles: str) -> dict[str, Any]:
    """``r`` is a problem of ``status`` and ``kind`` whose detail contains each needle."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["type"] == f"/problems/{kind}", body
    assert body["status"] == status
    for needle in needles:
        assert needle.lower() in body["detail"].lower(), body["detail"]
    return body


@contextmanager
def unchanged(c: TestClient, base: str, *ids: str) -> Iterator[None]:
    """The collection at ``base`` has the same count afterwards and none of ``ids`` exists."""
    before = c.get(base).json()["count"]
    yield
    assert c.get(base).json()["count"] == before
    for item_id in ids:
        assert c.get(f"{base}/items/{item_id}").status_code == 404, item_id


def wait_for(c: TestClient, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
    """The job once it is no longer queued or running (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout} s: {job}"
        time.sleep(0.05)


def fitted_map(c: TestClient, name: str, **body: Any) -> dict[str, Any]:
    """Fit collection ``name``'s map (the job's ``body``), wait for it, and read the map."""
    r = c.post(f"/v1/collections/{name}/map", json=body)
    assert r.status_code == 202, r.text
    job = wait_for(c, r.json()["id"], timeout=300)
    assert job["state"] == "done", job
    r = c.get(f"/v1/collections/{name}/map")
    assert r.status_code == 200, r.text
    view: dict[str, Any] = r.json()
    return view


def release_on_stop(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> None:
    """Make the runner's stop let a held batch go on once stopping has begun."""
    stop = JobRunner.stop

    def stopping(self: JobRunner) -> None:
        self._stopping.set()  # what stop() does first; the held batch may go on now
        release.set()
        stop(self)

    monkeypatch.setattr(JobRunner, "stop", stopping)


def pair(
    tmp_path: Path, engine: Engine, *, shared_dir: bool, poll_ms: float
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two servers on one database (sharing a data directory or each with its own), their
    followers polling every ``poll_ms``; clients sending the admin key."""
    url = engine.url.render_as_string(hide_password=False)
    cluster = ClusterSettings(replica=True, poll_ms=poll_ms, consistency_timeout=5)
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            data_dir = tmp_path / ("shared" if shared_dir else name)
            settings = make_settings(data_dir, database_url=url, cluster=cluster)
            app = create_app(settings, warm=False)
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            clients.append(stack.enter_context(TestClient(app, headers=headers)))
        yield clients[0], clients[1]


# -- references ----------------------------------------------------------------------------


def bm25_reference(docs: dict[int, str], query: str, k1: float = 1.2, b: float = 0.75) -> dict:
    # BM25 as Lucene scores it: idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
    # tf / (tf + k1 (1 - b + b · dl / avgdl)), over lower-cased \w\w+ words, English stop
    # words dropped, Snowball English stems.
    stem = Stemmer.Stemmer("english").stemWord
    stop = set(STOPWORDS_EN)

    def terms(text: str) -> list[str]:
        return [stem(w) for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in stop]

    analysed = {i: terms(t) for i, t in docs.items()}
    n = len(analysed)
    avgdl = sum(len(t) for t in analysed.values()) / n
    df = Counter(w for t in analysed.values() for w in set(t))
    out = {}
    for i, words in analysed.items():
        tf = Counter(words)
        score = 0.0
        for w in set(terms(query)):
            if tf[w]:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                score += idf * tf[w] / (tf[w] + k1 * (1 - b + b * len(words) / avgdl))
        if score > 0:
            out[i] = score
    return out


def rag_corpus() -> ModuleType:
    """bench/rag_corpus.py, loaded as the module ``rag_corpus``."""
    path = ROOT / "bench" / "rag_corpus.py"
    spec = importlib.util.spec_from_file_location("rag_corpus", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rag_corpus", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- snapshot files ------------------------------------------------------------------------


def tar_members(data: bytes) -> list[tuple[str, bytes]]:
    """The (name, bytes) of each member of a snapshot file, in order."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = []
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out.append((m.name, f.read()))
        return out


def tar_of(members: list[tuple[str, bytes]]) -> bytes:
    """A tar of ``members``, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def resealed(members: list[tuple[str, bytes]], edit: Any) -> bytes:
    """A snapshot's members with its manifest and parts edited by ``edit(manifest, parts)``
    and every part's checksum recomputed: a file that passes the integrity checks, so what
    refuses it is the content check."""
    parts = dict(members[1:])
    manifest = json.loads(members[0][1])
    edit(manifest, parts)
    manifest["parts"] = {
        name: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        for name, body in parts.items()
    }
    return tar_of([("manifest.json", json.dumps(manifest).encode()), *parts.items()])
