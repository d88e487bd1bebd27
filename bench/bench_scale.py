"""Filtered search at scale: latentspace over HTTP beside Chroma and LanceDB embedded.

    pip install -e '.[bench]'            # chromadb, lancedb, matplotlib
    python bench/bench_scale.py [--n 1000000] [--dim 384] [--queries 200]
        [--systems latentspace,chroma,lancedb] [--cell-seconds 120] [--quick] [--plot]
        [--server-log FILE] [--section NAME]

The same ``--n`` seeded unit vectors of ``--dim`` around 1,000 Gaussian centres, each with
metadata ``{"bucket": i % 100, "tag": "t<i % 1000>", "ts": 2026-01-01T00:00:00Z + i s}``,
go into each system, in one run, in batches of 1,000 (written once to a raw float32 file
that every ingester reads, so generating them is timed for none):

- latentspace: ``latentspace serve`` in a subprocess on 127.0.0.1, an ``auto`` cosine
  collection, ``POST …/vectors`` (base64 float32, ids and a metadata column), then ``flush``
  (which waits for the background index rebuild and saves it); peak RSS is the server's
  ``VmHWM``. Restart: SIGTERM, then a new server until ``GET /readyz`` answers 200.
- Chroma (``PersistentClient``, HNSW cosine, its defaults) and LanceDB (IVF_PQ cosine built
  after the writes, its defaults, BTREE scalar indexes on bucket and tag, prefiltered
  queries), each in a ``spawn``ed child process (scale_peers.py): peak RSS is that child's
  ``VmHWM``. Restart: a fresh child reopens the data (client, collection/table) and answers
  one query; its import time is reported apart.

Ingest vectors/s is wall clock from the first batch to the index built (flush included);
disk is the data directory's allocated blocks once the writer has closed. Queries: for each
filter (none, 50 %, 10 %, 1 %, 0.1 % of the items) the systems take turns, each answering 20
unrecorded warm-up queries then ``--queries`` held-out ones, one at a time from one client
(latentspace: keep-alive ``http.client``, base64 query vector, ``include: []`` as the peers
return ids only), each cell also capped at ``--cell-seconds``. Recall@10 is against exact
search over the matching items; *short*: answers with fewer than min(10, matched) hits. For
latentspace, ``matched`` of each answer is checked against the true count, and one extra
query with ``explain`` gives the filter strategy. Load averages at each cell's start and end.
Writes the "scale" section of bench/RESULTS.md and bench/scale_qps.png; ``--quick`` (20,000
vectors, 50 queries) only prints (and plots with ``--plot``).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import BATCH, JSON, K, batches
from results import machine, write_section
from scale_peers import (
    FILTERS,
    Filter,
    Peer,
    disk_mb,
    ingest,
    metadata,
    read_rows,
    rows,
    run_cell,
    vm_hwm_mb,
)

DATA_SEED, QUERY_SEED, WARMUP, NAME, CHUNK = 1, 2, 20, "scale", 10_000
SYSTEMS = ("latentspace", "chroma", "lancedb")
HERE = Path(__file__).resolve().parent


@dataclass
class Cell:
    system: str
    filter: Filter
    matched: int
    latencies: list[float]
    recall: float
    short: int
    load: tuple[float, float]
    strategy: str = ""
    mismatched: str = ""

    @property
    def qps(self) -> float:
        return 1000 / float(np.mean(self.latencies))


# -- data and exact truth ---------------------------------------------------------------------
def write_data(path: Path, n: int, dim: int, queries: np.ndarray) -> list[np.ndarray]:
    """Write the ``n`` rows to ``path`` in chunks; each filter's exact top-k ids per query
    (only a chunk and the running best are ever in memory)."""
    best_s = [np.full((len(queries), 0), -np.inf, np.float32) for _ in FILTERS]
    best_i = [np.zeros((len(queries), 0), np.int64) for _ in FILTERS]
    with path.open("wb") as out:
        for start in range(0, n, CHUNK):
            x = rows(start, min(n, start + CHUNK), dim, DATA_SEED)
            out.write(x.astype("<f4").tobytes())
            ids, scores = np.arange(start, start + len(x)), queries @ x.T
            for j, f in enumerate(FILTERS):
                keep = f.mask(ids)
                s = np.concatenate([best_s[j], scores[:, keep]], axis=1)
                i = np.concatenate([best_i[j], np.tile(ids[keep], (len(queries), 1))], axis=1)
                if s.shape[1] > K:  # the best K of the running best and this chunk's matches
                    top = np.argpartition(-s, K - 1, axis=1)[:, :K]
                    s, i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
                best_s[j], best_i[j] = s, i
    return best_i


def score(
    system: str,
    f: Filter,
    matched: int,
    truth: np.ndarray,
    latencies: list[float],
    found: list[list[int]],
    load: tuple[float, float],
) -> Cell:
    answered = truth[: len(found)]
    recall = np.mean(
        [len(set(a) & set(t.tolist())) / len(t) for a, t in zip(found, answered, strict=True)]
    )
    short = sum(len(a) < min(K, matched) for a in found)
    return Cell(system, f, matched, latencies, float(recall), short, load)


# -- latentspace --------------------------------------------------------------------------
class Server:
    """``latentspace serve`` on a free port of 127.0.0.1, over one data directory."""

    def __init__(self, data_dir: Path, log: Path | None = None) -> None:
        self.data_dir, self.port, self.base, self.log = data_dir, 0, "", log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start; seconds until ``GET /readyz`` answers 200."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "LATENTSPACE_DATA_DIR": str(self.data_dir), "LATENTSPACE_API_KEYS": ""}
        cmd = [sys.executable, "-m", "latentspace.cli", "serve", "--port", str(self.port)]
        started = time.perf_counter()
        level = "info" if self.log is not None else "warning"
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen([*cmd, "--log-level", level], env=env, stdout=out, stderr=out)
        self.base = f"http://127.0.0.1:{self.port}"
        while True:
            try:
                if httpx.get(self.base + "/readyz", timeout=5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - started > 1800:
                raise RuntimeError("latentspace serve did not start")
            time.sleep(0.02)

    def wait_warm(self, started: float) -> float:
        """Wait until ``/readyz`` says the start-up caches are filled; seconds since
        ``started`` (a ``perf_counter`` reading)."""
        while not httpx.get(self.base + "/readyz", timeout=60).json().get("warm", True):
            time.sleep(0.2)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=600)
            self.proc = None

    def peak_mb(self) -> float:
        assert self.proc is not None
        return vm_hwm_mb(self.proc.pid)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)


def latentspace_ingest(server: Server, data: Path, n: int, dim: int) -> dict[str, Any]:
    with httpx.Client(base_url=server.base, timeout=None) as c:
        c.post(
            "/v1/collections", json={"name": NAME, "dim": dim, "index": "auto", "metric": "cosine"}
        ).raise_for_status()
        started = time.perf_counter()
        for part in batches(n):
            x = read_rows(data, part.start, part.stop, dim)
            body = {
                "ids": [f"v{i}" for i in range(part.start, part.stop)],
                "vectors": base64.b64encode(x.tobytes()).decode(),
                "metadata": [metadata(i) for i in range(part.start, part.stop)],
            }
            r = c.post(f"/v1/collections/{NAME}/vectors", json=body)
            if r.status_code != 200:
                raise RuntimeError(f"ingest at {part.start}: {r.status_code} {r.text[:300]}")
        acked = time.perf_counter() - started
        index = c.post(f"/v1/collections/{NAME}/flush").raise_for_status().json()["index"]
        seconds = time.perf_counter() - started
    recall = index.get("recall_at_10")
    note = f"auto → {index['kind']}" + (
        f" (its recall@10 {recall:.3f})" if recall is not None else ""
    )
    return {"seconds": seconds, "acked_s": acked, "peak_mb": server.peak_mb(), "note": note}


def latentspace_search(
    conn: http.client.HTTPConnection, v: np.ndarray, f: Filter, explain: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"vector": base64.b64encode(v.astype("<f4").tobytes()).decode()},
        "k": K,
        "include": [],
    }
    if f.spec is not None:
        body["filter"] = f.spec
    if explain:
        body["explain"] = True
    conn.request("POST", f"/v1/collections/{NAME}/search", json.dumps(body), JSON)
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"search ({f.label}): {response.status} {answer}")
    return answer


def latentspace_cell(
    conn: http.client.HTTPConnection,
    f: Filter,
    warm: np.ndarray,
    queries: np.ndarray,
    seconds: float,
    matched: int,
) -> tuple[list[float], list[list[int]], str, str]:
    """The cell's latencies and ids, the strategy (one extra query with ``explain``), and
    how many recorded answers said a ``matched`` other than the true count ("-": no filter,
    or the server does not send it)."""
    said: list[int | None] = []
    conn.close()  # the server drops a keep-alive connection idle a few seconds: a new one

    def search(v: np.ndarray) -> list[int]:
        answer = latentspace_search(conn, v, f)
        said.append(answer.get("matched"))
        return [int(h["id"][1:]) for h in answer["results"]]

    latencies, found = run_cell(search, warm, queries, seconds)
    strategy = latentspace_search(conn, queries[0], f, explain=True).get("strategy") or "-"
    recorded = said[len(said) - len(found) :]
    wrong = "-" if f.spec is None or None in recorded else str(sum(m != matched for m in recorded))
    return latencies, found, strategy, wrong


# -- report ---------------------------------------------------------------------------------
def label(system: str) -> str:
    return {
        "latentspace": f"latentspace {version('latentspace')}, HTTP",
        "chroma": f"Chroma {version('chromadb')}, embedded",
        "lancedb": f"LanceDB {version('lancedb')}, embedded",
    }[system]


def plot(cells: list[Cell], systems: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system in systems:
        mine = sorted((c.filter.percent, c.qps) for c in cells if c.system == system)
        ax.plot([p for p, _ in mine], [q for _, q in mine], "o-", label=label(system))
    ax.set_xscale("log")
    ax.set_xticks([f.percent for f in FILTERS], [f"{f.percent:g} %" for f in FILTERS])
    ax.set_xlabel("items passing the filter (log scale; 100 % = no filter)")
    ax.set_yscale("log")
    ax.set_ylabel("queries/s, one at a time (log scale)")
    ax.set_title(f"Filtered search at {cells[0].matched:,} items", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(
    args: argparse.Namespace,
    n: int,
    systems: list[str],
    facts: dict[str, dict[str, Any]],
    cells: list[Cell],
    loads: tuple[float, float],
) -> str:
    import faiss

    alone = "" if set(systems) == set(SYSTEMS) else f" --systems {','.join(systems)}"
    heading = (
        "beside Chroma and LanceDB" if not alone else f"{', '.join(map(label, systems))} alone"
    )
    lines = [
        f"## Filtered search at scale, {heading} (`bench/bench_scale.py`)",
        "",
        f"`python bench/bench_scale.py --n {n} --dim {args.dim} --queries {args.queries} "
        f"--cell-seconds {args.cell_seconds:g}{alone}` on "
        f"{date.today()}: {machine()}; chromadb {version('chromadb')}, lancedb "
        f"{version('lancedb')}, faiss {faiss.__version__}. Load average (1 min) {loads[0]:.2f} "
        f"at the start, {loads[1]:.2f} at the end. {n:,} clustered unit vectors × {args.dim} "
        f"(1,000 centres) with metadata bucket, tag and ts; batches of {BATCH:,}; every "
        "system on one machine in one run. Ingest: first batch to index built (latentspace: "
        "`flush` included). Peak RSS: the latentspace server's `VmHWM`; for Chroma and "
        "LanceDB the `VmHWM` of the child process that ingested (imports included). Disk: "
        "allocated blocks of the data directory. Restart: latentspace from SIGTERM'd server "
        "to a new one's `/readyz` 200 (process start and imports included); the peers: "
        "reopen client and collection/table in a fresh process, after their import (shown "
        "apart); first answer adds one query.",
        *[
            f"latentspace acknowledged every write {facts[s]['acked_s']:.1f} s after the "
            f"first ({n / facts[s]['acked_s']:,.0f} vectors/s; `flush` then finished linking "
            f"the graph and saved it); after the restart, its background warm-up (hit rows, "
            f"payload index) was done {facts[s]['warm_s']:.1f} s after the start, and the "
            "queries began after it."
            for s in systems
            if s == "latentspace"
        ],
        "",
        "| system | index | ingest vectors/s | peak RSS MB | disk MB | restart-to-ready s "
        "| first answer s | import s | peak RSS serving MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        f = facts[s]
        imported = f"{f['import_s']:.2f}" if "import_s" in f else "(in ready)"
        lines.append(
            f"| {label(s)} | {f['note']} | {n / f['seconds']:,.0f} | {f['peak_mb']:,.0f} "
            f"| {f['disk_mb']:,.0f} | {f['ready_s']:.2f} | {f['first_s']:.2f} | {imported} "
            f"| {f['serving_mb']:,.0f} |"
        )
    lines += [
        "",
        f"Queries: per filter, the systems in turn, each {WARMUP} warm-up then up to "
        f"{args.queries} held-out queries one at a time (a cell stops after "
        f"{args.cell_seconds:g} s; *answered* says how many), k = {K}. QPS = 1 / mean "
        "latency. Recall@10 against exact search over the matching items; *short*: answers "
        "with fewer than min(10, matched) hits; *strategy* (latentspace, from `explain`) and "
        "*matched wrong*: answers whose `matched` differed from the true count. Load: the 1 "
        "min load average at the cell's start → end.",
        "",
        "| filter | matched | system | answered | p50 ms | p99 ms | QPS | recall@10 | short "
        "| strategy | matched wrong | load |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for c in cells:
        p50, p99 = np.percentile(c.latencies, [50, 99])
        lines.append(
            f"| {c.filter.label} | {c.matched:,} | {label(c.system)} | {len(c.latencies)} "
            f"| {p50:.2f} | {p99:.2f} | {c.qps:,.0f} | {c.recall:.3f} | {c.short} "
            f"| {c.strategy or '-'} | {c.mismatched or '-'} | {c.load[0]:.2f} → {c.load[1]:.2f} |"
        )
    return "\n".join(lines)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cell-seconds", type=float, default=120)
    parser.add_argument("--quick", action="store_true", help="20,000 vectors, 50 queries, print")
    parser.add_argument("--plot", action="store_true", help="with --quick: write the PNG too")
    parser.add_argument("--server-log", type=Path, help="latentspace's log (info) goes here")
    parser.add_argument(
        "--section", default="scale", help="the RESULTS.md section (and <section>_qps.png)"
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries = 20_000, 50
    n, dim = args.n, args.dim
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if not args.quick or args.plot:
        import matplotlib  # noqa: F401  (fail now, not after an hour of ingest)
    q = rows(0, WARMUP + args.queries, dim, QUERY_SEED)
    warm, queries = q[:WARMUP], q[WARMUP:]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server, peers = Server(tmp / "latentspace", args.server_log), {}
    facts: dict[str, dict[str, Any]] = {}
    cells: list[Cell] = []
    try:
        data = tmp / "vectors.f32"
        truth = write_data(data, n, dim, queries)
        matched = {f.label: int(f.mask(np.arange(n)).sum()) for f in FILTERS}
        progress(f"{n:,} × {dim} written, exact truth for {len(queries)} queries")
        for system in systems:  # ingest, each system alone on the machine
            if system == "latentspace":
                server.start()
                facts[system] = latentspace_ingest(server, data, n, dim)
                server.stop()
            else:
                facts[system] = ingest(system, tmp / system, data, n, dim)
            facts[system]["disk_mb"] = disk_mb(tmp / system)
            progress(
                f"{system}: ingest {n / facts[system]['seconds']:,.0f} vectors/s, {facts[system]}"
            )
        conn = None
        for system in systems:  # restart; each stays open for the queries
            if system == "latentspace":
                ready = server.start()
                conn = server.connection()
                started = time.perf_counter()
                latentspace_search(conn, queries[0], FILTERS[0])
                facts[system] |= {
                    "ready_s": ready,
                    "first_s": ready + time.perf_counter() - started,
                    "warm_s": ready + server.wait_warm(started),
                }
            else:
                peers[system] = Peer(system, tmp / system, queries[0])
                facts[system] |= peers[system].opened
            progress(f"{system}: restart {facts[system]}")
        loads = os.getloadavg()[0], 0.0
        for f in FILTERS:  # the systems take turns, filter by filter
            for system in systems:
                load = os.getloadavg()[0]
                strategy = wrong = ""
                if system == "latentspace":
                    assert conn is not None
                    latencies, found, strategy, wrong = latentspace_cell(
                        conn, f, warm, queries, args.cell_seconds, matched[f.label]
                    )
                else:
                    latencies, found = peers[system].cell(f.label, warm, queries, args.cell_seconds)
                cell = score(
                    system,
                    f,
                    matched[f.label],
                    truth[FILTERS.index(f)],
                    latencies,
                    found,
                    (load, os.getloadavg()[0]),
                )
                cell.strategy, cell.mismatched = strategy, wrong
                cells.append(cell)
                progress(
                    f"{f.label:>5} {system}: {len(latencies)} answered, {cell.qps:,.0f} QPS, "
                    f"recall {cell.recall:.3f}, short {cell.short}, {strategy} {wrong}"
                )
        loads = loads[0], os.getloadavg()[0]
        for system in systems:
            if system == "latentspace":
                facts[system]["serving_mb"] = server.peak_mb()
                server.stop()
            else:
                facts[system]["serving_mb"] = peers.pop(system).close()
    finally:
        server.stop()
        for peer in peers.values():
            peer.proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    body = report(args, n, systems, facts, cells, loads)
    print(body)
    image = f"{args.section.replace('-', '_')}_qps.png"
    if args.plot or not args.quick:
        plot(cells, systems, HERE / image)
    if not args.quick:
        write_section(args.section, body + f"\n\n![QPS by selectivity]({image})")


if __name__ == "__main__":
    main()
