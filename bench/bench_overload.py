"""Open-loop overload: goodput, latency and refusals at fixed arrival rates.

A closed loop of 8 clients measures the server's capacity C for a kind of search (10k × 64
raw vectors, one uvicorn worker in its own process; with two cores or more the server is
pinned to one and the generator to another). Then an open-loop generator sends requests
at fixed rates — 0.5 C, 1 C, 2 C — for a fixed time each, whatever the answers
(clients time out at 5 s), and records what came back: goodput (200s per second), the
served p50 / p99, how fast refusals (503) came, timeouts, the server's CPU use; and, after
the 2 C phase, how long until a probe is served at half-load latency again (recovery).

Two kinds of search, because the server runs them two ways: a lone vector (k = 10, no
filter) runs on the event loop itself, a search with a filter on the thread pool. Each
runs once with the default admission control and once with it effectively off.

    python bench/bench_overload.py
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

SERVER = """
import json, sys, uvicorn
from latentspace.api import create_app
from latentspace.api.app import served
from latentspace.settings import Settings, ServerSettings
server = ServerSettings(**json.loads(sys.argv[3]))
settings = Settings(data_dir=sys.argv[1], auth="off", server=server)
uvicorn.run(served(create_app(settings)), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="error", access_log=False)
"""
BARE = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    head = [(b"content-type", b"application/problem+json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 503, "headers": head})
    await send({"type": "http.response.body", "body": b"{}"})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False)
"""
N, DIM, PHASE_S, TIMEOUT_S = 10_000, 64, 10.0, 5.0
PINNED = len(os.sched_getaffinity(0)) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: str, admission: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", SERVER, data, str(port), json.dumps(admission)]
    if PINNED:  # the server on one core, the generator on the other
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).is_success:
                return server, base
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def bare_refusals() -> float:
    """Refusals per second a bare uvicorn app (503, nothing else) answers, pinned as the
    server is: the floor under what a refusal can cost."""
    port = free_port()
    cmd = [sys.executable, "-c", BARE, str(port)]
    server = subprocess.Popen(["taskset", "-c", "0", *cmd] if PINNED else cmd)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        return uvloop.run(closed_loop(f"http://127.0.0.1:{port}", 8, 5.0, {}, ok=503))
    finally:
        server.terminate()
        server.wait(30)


def fill(base: str) -> None:
    if httpx.get(f"{base}/v1/collections/b").status_code == 200:
        return
    httpx.post(f"{base}/v1/collections", json={"name": "b", "dim": DIM, "index": "flat"})
    x = np.random.default_rng(0).normal(size=(N, DIM)).astype(np.float32)
    for lo in range(0, N, 1000):
        items = [
            {"id": f"v{i}", "vector": x[i].tolist(), "metadata": {"bucket": i % 10}}
            for i in range(lo, lo + 1000)
        ]
        httpx.post(f"{base}/v1/collections/b/items", json={"items": items}, timeout=120)
    httpx.post(f"{base}/v1/collections/b/flush", timeout=120)


# what each kind of search adds to {"query": {"vector": ...}, "k": 10}
KINDS: dict[str, dict[str, Any]] = {
    "vector (event loop)": {},
    "vector + filter (thread pool)": {"filter": {"bucket": {"$lt": 5}}},
}


def bodies(n: int, extra: dict[str, Any]) -> list[bytes]:
    q = np.random.default_rng(1).normal(size=(n, DIM)).astype(np.float32)
    return [json.dumps({"query": {"vector": v.tolist()}, "k": 10, **extra}).encode() for v in q]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pool:
    """Keep-alive HTTP/1.1 connections to the server, opened on demand: a client cheap enough
    (raw asyncio streams, no HTTP library) that the generator, not the server, is never the
    bottleneck on the same machine."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> int:
        while self.idle:  # the server closes keep-alive connections idle for 5 s: as any
            reader, writer = self.idle.pop()  # HTTP client does, try the next or a new one
            try:
                status = await self.exchange(reader, writer, path, body)
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                continue
            if status != -1:
                return status
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self.exchange(reader, writer, path, body)

    async def exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
    ) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        writer.write(head + body)
        status_line = await reader.readline()
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        await reader.readexactly(length)
        if close or not status_line:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return int(status_line.split()[1]) if status_line else -1


async def one(pool: Pool, body: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(pool.post("/v1/collections/b/search", body), TIMEOUT_S)
    except TimeoutError:
        status = 0
    except (OSError, asyncio.IncompleteReadError, ValueError):
        status = -1
    return time.perf_counter() - started, status


def pool_of(base: str) -> Pool:
    host, port = base.removeprefix("http://").split(":")
    return Pool(host, int(port))


async def closed_loop(
    base: str, clients: int, seconds: float, extra: dict[str, Any], ok: int = 200
) -> float:
    """Answers with status ``ok`` per second to ``clients`` that each send one request
    after another."""
    done = 0
    queries = bodies(1000, extra)
    stop = time.perf_counter() + seconds
    pool = pool_of(base)

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop:
            _, status = await one(pool, queries[i % len(queries)])
            done += status == ok
            i += clients

    await asyncio.gather(*(worker(w) for w in range(clients)))
    return done / seconds


async def open_loop(
    base: str,
    rate: float,
    seconds: float,
    extra: dict[str, Any],
    recover_within: float | None = None,
) -> tuple[list[tuple[float, int]], float | None]:
    """Send at ``rate`` for ``seconds``; with ``recover_within``, also probe from the moment
    sending stops until a request is served within that latency (the recovery time)."""
    queries = bodies(1000, extra)
    pool = pool_of(base)
    tasks = []
    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(pool, queries[i % len(queries)])))
    probe = (
        asyncio.create_task(recovery(base, recover_within, extra))
        if recover_within is not None
        else None
    )
    results = list(await asyncio.gather(*tasks))
    return results, (await probe if probe is not None else None)


async def recovery(base: str, target_s: float, extra: dict[str, Any]) -> float:
    started = time.perf_counter()
    pool = pool_of(base)
    body = bodies(1, extra)[0]
    while time.perf_counter() - started < 30:
        latency, status = await one(pool, body)
        if status == 200 and latency <= target_s:
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    return float("inf")


def summary(results: list[tuple[float, int]], seconds: float) -> dict[str, float]:
    served = np.array([t for t, s in results if s == 200])
    refused = np.array([t for t, s in results if s in (429, 503)])
    return {
        "sent": len(results),
        "goodput": len(served) / seconds,
        "served_p50_ms": float(np.percentile(served, 50) * 1000) if served.size else float("nan"),
        "served_p99_ms": float(np.percentile(served, 99) * 1000) if served.size else float("nan"),
        "refused": len(refused),
        "refused_p99_ms": float(np.percentile(refused, 99) * 1000) if refused.size else 0.0,
        "timeouts": sum(1 for _, s in results if s == 0),
        "errors": sum(1 for _, s in results if s == -1),
    }


def run(
    kind: str, label: str, admission: dict[str, Any], data: str
) -> tuple[list[str], dict[str, float]]:
    extra = KINDS[kind]
    server, base = start(data, admission)
    try:
        fill(base)
        uvloop.run(closed_loop(base, 8, 2.0, extra))  # warm up
        capacity = uvloop.run(closed_loop(base, 8, PHASE_S, extra))
        rows, half_p99, verdict = [], 0.0, {}
        for factor in (0.5, 1.0, 2.0):
            target = 2 * half_p99 / 1000 if factor == 2.0 else None
            cpu, started = cpu_seconds(server.pid), time.perf_counter()
            results, back = uvloop.run(open_loop(base, factor * capacity, PHASE_S, extra, target))
            busy = (cpu_seconds(server.pid) - cpu) / (time.perf_counter() - started)
            s = summary(results, PHASE_S)
            if factor == 0.5:
                half_p99 = s["served_p99_ms"]
            if factor == 2.0:
                verdict = {
                    "capacity": capacity,
                    "goodput": s["goodput"] / capacity,
                    "p99_ratio": s["served_p99_ms"] / half_p99,
                    "refused_p99_ms": s["refused_p99_ms"],
                    "timeouts": s["timeouts"],
                    "recovery_s": back if back is not None else float("inf"),
                }
            rows.append(
                f"| {kind} | {label} | {factor:g} C ({factor * capacity:.0f}/s) | {s['sent']} | "
                f"{s['goodput']:.0f}/s ({s['goodput'] / capacity:.2f} C) | "
                f"{s['served_p50_ms']:.1f} / {s['served_p99_ms']:.1f} ms | "
                f"{s['refused']} (p99 {s['refused_p99_ms']:.1f} ms) | {s['timeouts']} | "
                f"{s['errors']} | {busy:.0%} | "
                + (f"{back:.2f} s |" if back is not None else "– |")
            )
            print(rows[-1], flush=True)
        rows.insert(
            0,
            f"| {kind} | {label} | capacity C = {capacity:.0f} searches/s (8 clients, closed "
            "loop) | | | | | | | | |",
        )
        return rows, verdict
    finally:
        server.terminate()
        server.wait(30)


OFF = {"max_in_flight": 100_000, "max_queue": 100_000, "queue_timeout": 3600}


def reading(kind: str, on: dict[str, float], off: dict[str, float]) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    # At 2 C a server busy all the time serves g·C and refuses the other (2 - g)·C, so a
    # refusal costs (1 - g) / (2 - g) of a served request.
    g = on["goodput"]
    return (
        f"- {kind}, admission on at 2 C: goodput {g:.2f} C ({met(g >= 0.9)}; off: "
        f"{off['goodput']:.2f} C); served p99 {on['p99_ratio']:.1f}× the half-load p99 "
        f"({met(on['p99_ratio'] <= 5)}; off: {off['p99_ratio']:.0f}×); refusals answered "
        f"with p99 {on['refused_p99_ms']:.0f} ms and {on['timeouts']:.0f} timeouts (off: "
        f"{off['timeouts']:.0f}); recovery {on['recovery_s']:.2f} s "
        f"({met(on['recovery_s'] < 1)}; off: {off['recovery_s']:.1f} s). A refusal cost "
        f"{(1 - g) / (2 - g):.2f} of a served request."
    )


def main() -> None:
    if PINNED:
        os.sched_setaffinity(0, {1})
    load_before = os.getloadavg()[0]
    rows, readings, capacities = [], [], []
    with tempfile.TemporaryDirectory() as data:
        for kind in KINDS:
            on_rows, on = run(kind, "admission on (defaults)", {}, data)
            off_rows, off = run(kind, "admission off", OFF, data)
            rows += on_rows + off_rows
            readings.append(reading(kind, on, off))
            capacities.append(on["capacity"])
    bare = bare_refusals()
    # a refusal costs at least what uvicorn alone spends on a request: q ≥ C / bare, and at
    # 2 C goodput g ≤ (1 - 2q) / (1 - q)
    floors = [(1 - 2 * c / bare) / (1 - c / bare) for c in capacities]
    body = (
        "## Overload: open-loop arrival rates (`bench/bench_overload.py`)\n\n"
        f"{machine()}; `uptime` load {load_before:.2f} before the run, "
        f"{os.getloadavg()[0]:.2f} at its end (its own server and generator keep about two "
        "cores busy); server and load generator share the machine"
        + (
            ", the server pinned to core 0 and the generator (on uvloop) to core 1, so the "
            "generator's own work at 2 C does not eat the server's CPU"
            if PINNED
            else " (one core: the generator's work at 2 C takes from the server's)"
        )
        + f". Search of 10k × 64 raw vectors (flat), k = 10, one uvicorn worker: a lone "
        "vector runs on the event loop, a vector with a filter (half the items) on the "
        f"thread pool. {PHASE_S:g} s per phase, clients time out at {TIMEOUT_S:g} s; server "
        "CPU = the server process's CPU time over the phase's wall time (100 % = one core); "
        "recovery = time from the end of the 2 C phase's sending until a probe is served "
        "within 2× the half-load p99. Goal at 2 C: goodput ≥ 0.9 C, served p99 ≤ 5× the "
        "0.5 C p99, the rest refused fast, recovery < 1 s.\n\n"
        "| search | server | arrival rate | sent | goodput | served p50 / p99 | refused (503) "
        "| timeouts | connection errors | server CPU | recovery |\n"
        "|---|---|---|---:|---|---|---|---:|---:|---:|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(readings)
        + "\n\nThe floor under a refusal's cost: a bare uvicorn app that answers every "
        f"request 503 and does nothing else answers {bare:.0f} a second here, pinned the "
        f"same way ({1e6 / bare:.0f} µs a request). A served search costs "
        + " and ".join(f"{bare / c:.0f}" for c in capacities)
        + " of those (the two kinds in order), and at 2 C every served search comes with "
        "about one refusal, so even refusals that cost no more than that bare answer would "
        "hold goodput at 2 C to "
        + " and ".join(f"{f:.2f} C" for f in floors)
        + ". The rest of a refusal is the admission decision and the problem body: the server "
        "asks the door before any other layer of the app (`latentspace.api.app.served`)."
    )
    write_section("overload", body)


if __name__ == "__main__":
    main()
