"""Server processes on one data directory: `serve --workers`, and replicas that survive
SIGKILL and take the directory over when its holder dies."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.cli_server import CliServer, cli_server

pytestmark = pytest.mark.slow

DIM = 8
REPLICA = {"LATENTSPACE_CLUSTER__REPLICA": "true", "LATENTSPACE_CLUSTER__POLL_MS": "50"}


def rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ready(server: CliServer) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert server.process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                return server.url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("not ready within 90 s")


def write(url: str, x: np.ndarray, first: int) -> int:
    items = [{"id": f"i{first + n}", "vector": v.tolist()} for n, v in enumerate(x)]
    r = httpx.post(f"{url}/v1/collections/c/items", json={"items": items}, timeout=60)
    assert r.status_code == 200, r.text
    return int(r.json()["seq"])


def nearest(url: str, v: np.ndarray, min_seq: int | None = None) -> Any:
    body: dict[str, Any] = {"query": {"vector": v.tolist()}, "k": 1}
    if min_seq is not None:
        body["consistency"] = {"min_seq": min_seq}
    r = httpx.post(f"{url}/v1/collections/c/search", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["id"]


def eventually(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not seen within the deadline"
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_serve_with_two_workers_reads_its_own_writes_from_either(tmp_path: Path) -> None:
    with cli_server(tmp_path / "data", "serve", "--workers", "2", "--no-json-logs") as server:
        url = ready(server)
        server.wait_for("held by another process: replica", 90)  # the second worker
        try:
            r = httpx.post(f"{url}/v1/collections", json={"name": "c", "dim": DIM}, timeout=60)
            assert r.status_code == 201, r.text
            x = rows(60, seed=0)
            for batch in range(3):
                seq = write(url, x[batch * 20 : (batch + 1) * 20], batch * 20)
                # each search may land on either worker: with min_seq every one sees the write
                for n in range(batch * 20, (batch + 1) * 20, 2):
                    assert nearest(url, x[n], min_seq=seq) == f"i{n}"
        except (AssertionError, httpx.HTTPError) as e:  # what the workers said meanwhile
            log = "\n".join(server.drained())
            raise AssertionError(f"{e!r}\nserver log:\n{log}") from e


@pytest.mark.timeout(300)
def test_a_killed_replica_catches_up_and_a_replica_takes_over_a_dead_holder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    x = rows(200, seed=1)
    with cli_server(data, "serve", env=REPLICA) as holder:
        a = ready(holder)
        r = httpx.post(f"{a}/v1/collections", json={"name": "c", "dim": DIM}, timeout=60)
        assert r.status_code == 201, r.text
        write(a, x[:20], 0)
        with cli_server(data, "serve", env=REPLICA) as replica:
            b = ready(replica)
            assert nearest(b, x[7]) == "i7"
            # b applies a's writes as they come (it polls every 50 ms) and is killed
            # partway through them
            for batch in range(1, 6):
                write(a, x[batch * 20 : (batch + 1) * 20], batch * 20)
            os.kill(replica.process.pid, signal.SIGKILL)
            replica.process.wait(30)
        seq = write(a, x[120:200], 120)
        with cli_server(data, "serve", env=REPLICA) as replica:
            b = ready(replica)
            # a fresh replica holds everything SQL has, whatever the killed one had applied
            assert all(nearest(b, x[n], min_seq=seq) == f"i{n}" for n in range(0, 200, 9))
            assert httpx.get(f"{b}/v1/collections/c", timeout=30).json()["count"] == 200
            os.kill(holder.process.pid, signal.SIGKILL)
            holder.process.wait(30)
            replica.wait_for("now writes the index files", 30)
            # the survivor serves and takes writes; stopped cleanly, it saves the index
            x2 = rows(10, seed=2)
            items = [{"id": f"j{n}", "vector": v.tolist()} for n, v in enumerate(x2)]
            r = httpx.post(f"{b}/v1/collections/c/items", json={"items": items}, timeout=60)
            assert r.status_code == 200, r.text
            assert nearest(b, x2[3]) == "j3"
    with cli_server(data, "serve", "--no-json-logs") as alone:
        url = ready(alone)
        assert nearest(url, x2[3]) == "j3"
        assert httpx.get(f"{url}/v1/collections/c", timeout=30).json()["count"] == 210
    logged = []
    while not alone.lines.empty():
        logged.append(alone.lines.get())
    opened = [line for line in logged if "collection c:" in line]
    assert opened
    assert all("rebuilding" not in line for line in opened), opened
