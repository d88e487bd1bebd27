"""The data, filters and embedded peers (Chroma, LanceDB) of bench_scale.py.

Each peer runs in processes of its own, started with ``spawn``: one ingests and builds the
index, then exits, reporting its peak RSS (``VmHWM``, imports included); a second reopens
the data from disk (the restart) and answers the query cells the bench sends it over a pipe,
timing each query inside that process (no pipe in the latency).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bench_peers import BATCH, K, batches

BLOCK, CENTRES = 1000, 1000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
Search = Callable[[np.ndarray], list[int]]


# -- data ------------------------------------------------------------------------------------
@cache
def centres(dim: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(CENTRES, dim)).astype(np.float32)


def block(b: int, dim: int, seed: int) -> np.ndarray:
    """Rows ``b*BLOCK ..`` of the data set ``seed``: unit vectors around 1,000 Gaussian
    centres (bench_peers.py's ``clustered`` with ten times the centres), the same whatever
    else is generated."""
    rng = np.random.default_rng([seed, b])
    x = centres(dim)[rng.integers(0, CENTRES, BLOCK)]
    x += 0.5 * rng.normal(size=(BLOCK, dim)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def rows(start: int, stop: int, dim: int, seed: int) -> np.ndarray:
    first = start // BLOCK
    x = np.concatenate([block(b, dim, seed) for b in range(first, (stop - 1) // BLOCK + 1)])
    return x[start - first * BLOCK : stop - first * BLOCK]


def read_rows(path: Path, start: int, stop: int, dim: int) -> np.ndarray:
    """Rows of the raw float32 file the bench writes once (a read, not a map: no RSS)."""
    count = (stop - start) * dim
    x = np.fromfile(path, dtype=np.float32, count=count, offset=start * dim * 4)
    return x.reshape(-1, dim)


def metadata(i: int) -> dict[str, Any]:
    ts = (EPOCH + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"bucket": i % 100, "tag": f"t{i % 1000}", "ts": ts}


@dataclass(frozen=True)
class Filter:
    """A filter in latentspace's DSL (which Chroma's ``where`` reads alike) and in LanceDB's
    SQL, with the share of items it passes."""

    label: str
    percent: float
    spec: dict[str, Any] | None
    sql: str | None

    def mask(self, ids: np.ndarray) -> np.ndarray:
        if self.spec is None:
            return np.ones(len(ids), dtype=bool)
        if "tag" in self.spec:
            return ids % 1000 == int(self.spec["tag"][1:])
        bucket = self.spec["bucket"]
        return ids % 100 < bucket["$lt"] if isinstance(bucket, dict) else ids % 100 == bucket


FILTERS = (
    Filter("none", 100.0, None, None),
    Filter("50 %", 50.0, {"bucket": {"$lt": 50}}, "bucket < 50"),
    Filter("10 %", 10.0, {"bucket": {"$lt": 10}}, "bucket < 10"),
    Filter("1 %", 1.0, {"bucket": 7}, "bucket = 7"),
    Filter("0.1 %", 0.1, {"tag": "t7"}, "tag = 't7'"),
)
BY_LABEL = {f.label: f for f in FILTERS}


# -- measuring -------------------------------------------------------------------------------
def vm_hwm_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (``VmHWM``), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    """Space the files under ``path`` take on disk (allocated blocks, as ``du``), MB."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total / 2**20


def run_cell(
    search: Search, warm: np.ndarray, queries: np.ndarray, seconds: float
) -> tuple[list[float], list[list[int]]]:
    """Warm-up queries (at most a quarter of ``seconds``), then ``queries`` one at a time
    until they or ``seconds`` run out: each one's latency (ms) and ids."""
    deadline = time.monotonic() + seconds / 4
    for v in warm:
        search(v)
        if time.monotonic() > deadline:
            break
    deadline, latencies, found = time.monotonic() + seconds, [], []
    for v in queries:
        started = time.perf_counter()
        found.append(search(v))
        latencies.append((time.perf_counter() - started) * 1000)
        if time.monotonic() > deadline:
            break
    return latencies, found


# -- Chroma ----------------------------------------------------------------------------------
def chroma_ingest(path: Path, data: Path, n: int, dim: int) -> str:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    col = client.create_collection("bench", configuration={"hnsw": {"space": "cosine"}})
    assert client.get_max_batch_size() >= BATCH
    for part in batches(n):
        col.add(
            ids=[str(i) for i in range(part.start, part.stop)],
            embeddings=read_rows(data, part.start, part.stop, dim),
            metadatas=[metadata(i) for i in range(part.start, part.stop)],
        )
    return "HNSW, cosine, its defaults"


def chroma_open(path: Path) -> Callable[[np.ndarray, Filter], list[int]]:
    import chromadb

    col = chromadb.PersistentClient(path=str(path)).get_collection("bench")

    def search(v: np.ndarray, f: Filter) -> list[int]:
        found = col.query(query_embeddings=v[None, :], n_results=K, where=f.spec, include=[])
        return [int(i) for i in found["ids"][0]]

    return search


# -- LanceDB ---------------------------------------------------------------------------------
def lance_ingest(path: Path, data: Path, n: int, dim: int) -> str:
    import lancedb
    import pyarrow as pa

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("bucket", pa.int64()),
            ("tag", pa.string()),
            ("ts", pa.string()),
        ]
    )
    table = lancedb.connect(str(path)).create_table("bench", schema=schema)
    for part in batches(n):
        meta = [metadata(i) for i in range(part.start, part.stop)]
        flat = pa.array(read_rows(data, part.start, part.stop, dim).reshape(-1), pa.float32())
        columns = [
            pa.array(np.arange(part.start, part.stop), type=pa.int64()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
            *(pa.array([m[c] for m in meta]) for c in ("bucket", "tag", "ts")),
        ]
        table.add(pa.Table.from_arrays(columns, schema=schema))
    table.create_index(metric="cosine", index_type="IVF_PQ")  # its defaults otherwise
    table.create_scalar_index("bucket")  # BTREE, the default
    table.create_scalar_index("tag")
    return "IVF_PQ, cosine, its defaults; BTREE scalar indexes on bucket and tag; prefilter"


def lance_open(path: Path) -> Callable[[np.ndarray, Filter], list[int]]:
    import lancedb

    table = lancedb.connect(str(path)).open_table("bench")

    def search(v: np.ndarray, f: Filter) -> list[int]:
        query = table.search(v).distance_type("cosine").limit(K)
        if f.sql is not None:
            query = query.where(f.sql, prefilter=True)
        hits = query.select(["id", "_distance"]).to_arrow()  # _distance: lance warns without
        return hits.column("id").to_pylist()

    return search


INGEST = {"chroma": chroma_ingest, "lancedb": lance_ingest}
OPEN = {"chroma": chroma_open, "lancedb": lance_open}
MODULE = {"chroma": "chromadb", "lancedb": "lancedb"}


# -- the processes ---------------------------------------------------------------------------
def _ingest_child(system: str, path: str, data: str, n: int, dim: int, conn: Connection) -> None:
    importlib.import_module(MODULE[system])
    started = time.perf_counter()
    note = INGEST[system](Path(path), Path(data), n, dim)
    conn.send({"seconds": time.perf_counter() - started, "peak_mb": vm_hwm_mb(), "note": note})


def _serve_child(system: str, path: str, probe: np.ndarray, conn: Connection) -> None:
    started = time.perf_counter()
    importlib.import_module(MODULE[system])
    imported = time.perf_counter()
    search = OPEN[system](Path(path))
    opened = time.perf_counter()
    search(probe, FILTERS[0])
    conn.send(
        {
            "import_s": imported - started,
            "ready_s": opened - imported,
            "first_s": time.perf_counter() - imported,
        }
    )
    while (message := conn.recv()) is not None:
        label, warm, queries, seconds = message
        f = BY_LABEL[label]
        conn.send(run_cell(lambda v, f=f: search(v, f), warm, queries, seconds))
    conn.send(vm_hwm_mb())


def ingest(system: str, path: Path, data: Path, n: int, dim: int) -> dict[str, Any]:
    """Ingest in a child process: seconds (first batch to index built), peak RSS, a note."""
    spawn = mp.get_context("spawn")
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=_ingest_child, args=(system, str(path), str(data), n, dim, theirs))
    child.start()
    theirs.close()
    try:
        result: dict[str, Any] = ours.recv()
    finally:
        child.join()
    return result


class Peer:
    """A peer reopened from disk in a process of its own, answering query cells."""

    def __init__(self, system: str, path: Path, probe: np.ndarray) -> None:
        spawn = mp.get_context("spawn")
        self.conn, theirs = spawn.Pipe()
        self.proc = spawn.Process(target=_serve_child, args=(system, str(path), probe, theirs))
        self.proc.start()
        theirs.close()
        self.opened: dict[str, float] = self.conn.recv()

    def cell(
        self, label: str, warm: np.ndarray, queries: np.ndarray, seconds: float
    ) -> tuple[list[float], list[list[int]]]:
        self.conn.send((label, warm, queries, seconds))
        latencies, found = self.conn.recv()
        return latencies, found

    def close(self) -> float:
        """Stop the process; its peak RSS (MB) while serving."""
        self.conn.send(None)
        peak = float(self.conn.recv())
        self.proc.join(timeout=60)
        return peak
