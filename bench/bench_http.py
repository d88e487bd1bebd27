"""HTTP search throughput and latency at 1, 8 and 64 clients, next to a no-op FastAPI endpoint.

    python bench/bench_http.py [--n 100000] [--seconds 10] [--warmup 2] [--rounds 2]
                               [--index hnsw] [--data-dir DIR] [--quick]

``--n`` 64-d unit vectors (tiny-shapes; 1000 Gaussian centres plus noise) are loaded in-process
through the service layer. Then each round runs three one-worker uvicorn servers, one after the
other, each in its own process on 127.0.0.1: a FastAPI app whose ``POST /noop`` parses the JSON
body and returns ``{"ok": true}`` (sent the vector-search bodies); latentspace with micro-batching
on (vector, then text search); latentspace with ``LATENTSPACE_SEARCH__MICRO_BATCH=false``
(both with an admission queue of 128, so 64 clients are queued, not refused). The
rounds alternate which setting goes first; each cell pools its rounds.

The load generator is this process: N clients, each on its own keep-alive HTTP/1.1 connection,
each sending its next request when the last one is answered (closed loop), on uvloop. It is a
minimal hand-written client because ``httpx.AsyncClient`` was the bottleneck on the 2-core
reference machine: 331 / 272 / 93 no-op req/s at 1 / 8 / 64 clients, where wrk and this client
get ~1,100-1,400. Per cell and round: ``--warmup`` s unrecorded, then ``--seconds`` s recorded,
keeping every completed request's latency; a non-2xx answer fails the run. Writes the "http"
section of bench/RESULTS.md; ``--quick`` (5,000 items, 1 s cells) only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLLECTION, MODEL, K, QUERIES, BATCH = "bench", "tiny-shapes", 10, 1000, 5000
CONCURRENCY = (1, 8, 64)
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "white", "black")
SHAPES = ("circle", "square", "triangle", "star")
NOOP, ON, OFF = "noop", "search vector, micro-batch on", "search vector, micro-batch off"
TEXT = "search text, micro-batch on"
JSON = {"content-type": "application/json"}
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cell:
    """One (endpoint, clients) cell, pooled over rounds; CPU in seconds while recorded."""

    endpoint: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # each round's requests/s
    window: float = 0.0
    errors: int = 0
    server_s: float = 0.0
    client_s: float = 0.0
    other_s: float = 0.0  # every other process on the machine

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.window

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per request."""
        return self.server_s * 1000 / len(self.latencies)

    def row(self) -> str:
        p50, p99 = np.percentile(np.asarray(self.latencies) * 1000, [50, 99])
        cores = " | ".join(f"{s / self.window:.2f}" for s in (self.client_s, self.other_s))
        return (
            f"| {self.endpoint} | {self.clients} | {self.rps:,.0f} | "
            f"{' / '.join(f'{r:,.0f}' for r in self.rounds)} | {p50:.2f} | {p99:.2f} | "
            f"{self.errors} | {self.server_s / self.window:.2f} | {self.cpu_ms:.2f} | {cores} |"
        )


# -- data, servers, CPU ------------------------------------------------------------------------
def clustered(n: int, dim: int, seed: int, centers: int = 1000) -> np.ndarray:
    """``n`` unit float32 vectors: Gaussian clusters (centres fixed across seeds) plus noise."""
    means = np.random.default_rng(123).standard_normal((centers, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    x = means[rng.integers(0, centers, n)] + 0.5 * rng.standard_normal((n, dim), np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def per_call_ms(call: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    """Mean milliseconds of ``call(query)`` over ``queries``, after 50 unrecorded calls."""
    for q in queries[:50]:
        call(q)
    started = time.perf_counter()
    for q in queries:
        call(q)
    return (time.perf_counter() - started) * 1000 / len(queries)


def load(data_dir: Path, n: int, index: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Fill ``data_dir`` (unless it holds ``n`` items already): the vectors, and the in-process
    ms of one query by bare FAISS and by ``service.search.search_vector`` (SQL included)."""
    from latentspace.service import collections, items, lifecycle
    from latentspace.service.search import search_vector
    from latentspace.settings import Settings
    from latentspace.store.repository import ItemInput

    ctx = lifecycle.start(Settings(data_dir=data_dir, auth="off"))
    try:
        names = {c.name for c in collections.list_all(ctx)}
        if COLLECTION in names and collections.stats(ctx, COLLECTION).count != n:
            collections.delete(ctx, COLLECTION)
            names.remove(COLLECTION)
        if COLLECTION not in names:
            collections.create(ctx, COLLECTION, model=MODEL, index=index)
        dim = collections.get(ctx, COLLECTION).dim
        x, started = clustered(n, dim, seed=0), time.perf_counter()
        for lo in range(collections.stats(ctx, COLLECTION).count, n, BATCH):
            ids = range(lo, min(n, lo + BATCH))
            hashes = [hashlib.sha256(f"bench-{i}".encode()).hexdigest() for i in ids]
            items.write(
                ctx,
                COLLECTION,
                [
                    ItemInput(f"v{i}", "vector", sha, x[i], metadata={"n": i % 100})
                    for i, sha in zip(ids, hashes, strict=True)
                ],
            )
            print(f"  {ids.stop:,} items, {time.perf_counter() - started:.0f} s", flush=True)
        queries = clustered(QUERIES, dim, seed=1)
        live = ctx.live.indexes.index(collections.get(ctx, COLLECTION))
        timings = {
            "faiss_ms": per_call_ms(lambda q: live.search(q[None, :], K), queries),
            "service_ms": per_call_ms(lambda q: search_vector(ctx, COLLECTION, q, K), queries),
        }
    finally:
        lifecycle.stop(ctx)  # saves the index, so the servers load it instead of rebuilding
    return x, timings


def serve(app_name: str, port: int) -> None:
    """Run one server in this process (the hidden ``--serve`` mode of this script)."""
    import uvicorn
    from fastapi import FastAPI

    if app_name == NOOP:
        app = FastAPI()

        @app.post("/noop")
        def noop(body: dict[str, Any]) -> dict[str, bool]:
            return {"ok": True}

    else:
        from latentspace.api import create_app
        from latentspace.settings import Settings

        app = create_app(Settings())  # data dir, auth and micro-batching from the environment
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.TransportError:
        return False


@contextmanager
def server(app_name: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start ``--serve app_name`` in a subprocess; yield (base URL, pid) once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve", app_name, "--port", str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, **env})
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
    try:
        while not answers(base + ("/docs" if app_name == NOOP else "/readyz")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app_name} server did not start ({proc.returncode})")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds so far of process ``pid``, of this process (None), or of the
    whole machine (0)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    if pid == 0:  # the aggregate "cpu" line: every state but idle (3) and iowait (4)
        ticks = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        return sum(int(t) for i, t in enumerate(ticks) if i not in (3, 4)) / os.sysconf(
            "SC_CLK_TCK"
        )
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def code_state() -> str:
    """The commit under test, and a digest of uncommitted changes to src/ (if any)."""

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip()

    diff = git("diff", "HEAD", "--", "src")
    digest = hashlib.sha256(diff.encode()).hexdigest()[:8]
    return git("rev-parse", "--short", "HEAD") + (
        f" + uncommitted src/ changes {digest}" if diff else ""
    )


# -- load generator --------------------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON (Content-Length framed answers only,
    which is all these servers send)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> int:
        """Send ``body``, read the whole answer; its status code."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        framing = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        writer.write((self.head + framing).encode() + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        assert "transfer-encoding" not in fields, "chunked answers are not supported"
        await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection") == "close":
            self.close()
        return int(head[9:12])

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def drive(
    cell: Cell, url: str, bodies: Sequence[bytes], pid: int, warmup: float, seconds: float
) -> None:
    """One round of closed-loop load from ``cell.clients`` connections, added to ``cell``."""
    latencies: list[float] = []
    errors, recording, stopping = 0, False, False

    async def client(i: int) -> None:
        nonlocal errors
        connection = Connection(url)
        while not stopping:
            started = time.perf_counter()
            try:
                status = await connection.post(bodies[i % len(bodies)])
                ok, why = 200 <= status < 300, f"HTTP {status}"
            except (OSError, asyncio.IncompleteReadError) as e:
                connection.close()
                ok, why = False, repr(e)
            i += cell.clients
            if recording:
                latencies.append(time.perf_counter() - started)
                errors += not ok
            elif not ok:
                raise RuntimeError(f"a request to {url} failed during the warm-up: {why}")
        connection.close()

    tasks = [asyncio.create_task(client(i)) for i in range(cell.clients)]
    await asyncio.sleep(warmup)
    recording = True
    cpu0, t0 = (cpu_seconds(pid), cpu_seconds(), cpu_seconds(0)), time.perf_counter()
    await asyncio.sleep(seconds)
    recording, stopping = False, True
    window = time.perf_counter() - t0
    cpu1 = (cpu_seconds(pid), cpu_seconds(), cpu_seconds(0))
    server_s, client_s, all_s = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    await asyncio.gather(*tasks)
    cell.latencies += latencies
    cell.rounds.append(len(latencies) / window)
    cell.window += window
    cell.errors += errors
    cell.server_s += server_s
    cell.client_s += client_s
    cell.other_s += max(0.0, all_s - server_s - client_s)
    print(
        f"  {cell.endpoint:<30} {cell.clients:>2} clients {cell.rounds[-1]:7,.0f} req/s", flush=True
    )
    assert latencies, f"no request to {url} completed in {window:.1f} s"
    assert errors == 0, f"{errors} failed requests: {cell.endpoint}, {cell.clients} clients"


# -- the benchmark ---------------------------------------------------------------------------
@dataclass
class Bench:
    """Everything one run measures, and how it reports it."""

    args: argparse.Namespace
    data_dir: Path
    x: np.ndarray
    stats: dict[str, Any]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)

    def bodies(self, kind: str) -> list[bytes]:
        if kind == "text":
            terms: list[dict[str, Any]] = [{"text": f"a {c} {s}"} for s in SHAPES for c in COLOURS]
        else:
            queries = clustered(QUERIES, self.x.shape[1], seed=1)
            terms = [{"vector": [round(float(v), 6) for v in q]} for q in queries]
        return [json.dumps({"query": term, "k": K}).encode() for term in terms]

    def sweep(self, endpoint: str, url: str, bodies: Sequence[bytes], pid: int) -> None:
        """One round of ``endpoint`` at every concurrency."""
        import uvloop  # installed with uvicorn[standard], which serves on it too

        for clients in CONCURRENCY:
            cell = self.cells.setdefault((endpoint, clients), Cell(endpoint, clients))
            uvloop.run(drive(cell, url, bodies, pid, self.args.warmup, self.args.seconds))

    def noop(self) -> None:
        with server(NOOP, {}) as (base, pid):
            self.sweep(NOOP, base + "/noop", self.bodies("vector"), pid)

    def latentspace(self, micro_batch: bool) -> None:
        """One server run: check the collection, then its vector (and text) cells."""
        env = {
            "LATENTSPACE_DATA_DIR": str(self.data_dir),
            "LATENTSPACE_AUTH": "off",
            "LATENTSPACE_SEARCH__MICRO_BATCH": str(micro_batch).lower(),
            # room for every client in the admission queue: the cells measure throughput,
            # not refusals (bench_overload.py measures those)
            "LATENTSPACE_SERVER__MAX_QUEUE": str(max(CONCURRENCY) * 2),
        }
        with server("latentspace", env) as (base, pid):
            url = f"{base}/v1/collections/{COLLECTION}/search"
            self.stats.update(httpx.get(f"{base}/v1/collections/{COLLECTION}").json())
            assert self.stats["count"] == self.args.n, self.stats
            own = {"query": {"vector": self.x[0].tolist()}, "k": K}
            hits = httpx.post(url, json=own).json()["results"]
            assert len(hits) == K, hits
            assert hits[0]["id"] == "v0", hits[:2]  # an item's own vector finds it first
            self.sweep(ON if micro_batch else OFF, url, self.bodies("vector"), pid)
            if micro_batch:
                first = time.perf_counter()
                for text in self.bodies("text"):  # loads the encoder, then fills the text cache
                    httpx.post(url, content=text, headers=JSON, timeout=300).raise_for_status()
                self.stats.setdefault("first_text_s", []).append(time.perf_counter() - first)
                self.sweep(TEXT, url, self.bodies("text"), pid)

    def observations(self) -> list[str]:
        """What this run's numbers say, computed from them."""
        cells, stats = self.cells, self.stats
        spread = max((max(c.rounds) - min(c.rounds)) / c.rps for c in cells.values())
        lines = []
        for n in CONCURRENCY:
            noop, on, off = cells[(NOOP, n)].rps, cells[(ON, n)].rps, cells[(OFF, n)].rps
            verdict = "no clear difference"
            if abs(on / off - 1) > max(0.1, spread):
                verdict = "micro-batching helped" if on > off else "micro-batching was slower"
            lines.append(
                f"- {n} client{'s' * (n > 1)}: vector search did {on / noop:.0%} (micro-batch "
                f"on) / {off / noop:.0%} (off) of the no-op's RPS, text search "
                f"{cells[(TEXT, n)].rps / noop:.0%}; micro-batch on/off = {on / off:.2f}× "
                f"({verdict})."
            )
        search = [c.cpu_ms for c in cells.values() if c.endpoint != NOOP]
        off_ms = " / ".join(f"{cells[(OFF, n)].cpu_ms:.1f}" for n in CONCURRENCY)
        return [
            *lines,
            f"- Noise: the rounds of one cell differed by up to {spread:.0%} of its RPS; smaller "
            f"differences between rows (and ±10% in any case) are not read as real.",
            f"- The server never kept more than "
            f"{max(c.server_s / c.window for c in cells.values()):.2f} cores busy, the client "
            f"at most {max(c.client_s / c.window for c in cells.values()):.2f}: one worker's "
            f"Python code runs under one GIL, so past one client requests only queue (latency "
            f"grows with the clients, RPS does not). A search cost the server "
            f"{min(search):.1f}–{max(search):.1f} ms of CPU (micro-batch off: {off_ms} ms at "
            f"{' / '.join(map(str, CONCURRENCY))} clients; RPS = cores busy / CPU per request). "
            f"In-process, on the same index before the servers started, one query took "
            f"{stats['faiss_ms']:.3f} ms in bare FAISS and {stats['service_ms']:.2f} ms through "
            f"`search_vector` (FAISS plus the SQL lookups); the other "
            f"~{min(search) - stats['service_ms']:.0f} ms of a request go to HTTP, "
            f"FastAPI/pydantic, middleware and the rest of the route. The FAISS call, the only "
            f"part micro-batching shares between requests, is a small part of a request.",
            f"- Not in the table: after each start of the micro-batch-on server, the first text "
            f"query plus one for each other phrase took "
            f"{' / '.join(f'{s:.1f}' for s in stats['first_text_s'])} s in all: those phrases "
            f"are not yet in the text cache (the encoder itself is loaded before `/readyz` "
            f"answers ok).",
        ]

    def report(self, minutes: float) -> str:
        import fastapi
        import uvicorn

        code = self.stats["code"]
        if code_state() != code:
            code += f" at the start; src/ changed during the run (now {code_state()})"

        args, stats, index, cores = self.args, self.stats, self.stats["index"], os.cpu_count()
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
        order = [NOOP, ON, OFF, TEXT]
        cells = sorted(self.cells.values(), key=lambda c: (order.index(c.endpoint), c.clients))
        return f"""\
## HTTP search: throughput and latency (`bench/bench_http.py`)

Run {date.today().isoformat()} on a {cores}-core CPU (`nproc` = {len(os.sched_getaffinity(0))}, \
{cpu}), no GPU; Python {sys.version.split()[0]}, FastAPI {fastapi.__version__}, uvicorn \
{uvicorn.__version__}, one worker. Code: {code}. Whole run {minutes:.1f} min. Reproduce: \
`.venv/bin/python bench/bench_http.py{"" if args.n == 100_000 else f" --n {args.n}"}`.

Collection: {stats["count"]:,} items × {stats["dim"]}-d ({MODEL}), index `{index["kind"]}` \
(requested `{index["requested"]}`, {index["params"]}); k = {K}, no filter, default `include`. \
Vector queries cycle through {QUERIES} vectors from the collection's distribution, text queries \
through {len(COLOURS) * len(SHAPES)} colour × shape phrases ("a red circle"), each sent once \
before the text cells, so those measure the text-cache path, not the encoder. Each cell: \
{args.rounds} rounds (servers restarted, on/off order alternating) of {args.warmup:g} s warm-up \
+ {args.seconds:g} s recorded, pooled; closed loop, one keep-alive HTTP/1.1 connection per \
client; latentspace's admission queue holds {max(CONCURRENCY) * 2} (every client waits, none is \
refused). The load generator (a minimal asyncio client; the script's docstring says why not \
httpx) is a separate process on the same {cores} cores, so its CPU is taken from the server's. \
CPU columns: cores kept busy while recorded; "other" is every other process on the machine \
(anything there would disturb the numbers).

| endpoint | clients | RPS | RPS per round | p50 ms | p99 ms | errors | server CPU cores \
| server CPU ms/req | client CPU cores | other CPU cores |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(c.row() for c in cells)}

{chr(10).join(self.observations())}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="items in the collection")
    parser.add_argument("--seconds", type=float, default=10.0, help="recorded seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds per cell")
    parser.add_argument("--rounds", type=int, default=2, help="server restarts per setting")
    parser.add_argument("--index", default="hnsw", help="index kind for create_collection")
    parser.add_argument("--data-dir", type=Path, help="keep (and reuse) the data here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 items, 1 s cells")
    parser.add_argument("--serve", choices=(NOOP, "latentspace"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.seconds, args.warmup = 5000, 1.0, 0.5
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    from results import write_section

    started, code = time.perf_counter(), code_state()
    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="bench-http-")
    data_dir = args.data_dir or Path(str(tmp))
    try:
        print(f"loading {args.n:,} items into {data_dir}", flush=True)
        bench = Bench(args, data_dir, *load(data_dir, args.n, args.index))
        bench.stats["code"] = code
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            bench.noop()
            for micro_batch in (round_ % 2 == 0, round_ % 2 == 1):
                bench.latentspace(micro_batch)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    body = bench.report((time.perf_counter() - started) / 60)
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("http", body)
        print("wrote the 'http' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
