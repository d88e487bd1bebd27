"""latentspace beside the embedded peers: ingest vectors/s, recall@10, single-query QPS.

    pip install -e '.[bench]'            # chromadb and lancedb
    python bench/bench_peers.py [--n 50000] [--dim 384] [--queries 300] [--quick]

The same ``--n`` unit vectors of ``--dim`` around 100 Gaussian centres and ``--queries``
held-out queries go into each system, in one run, on one machine:

- Chroma, embedded (``PersistentClient``, cosine HNSW, its defaults), ``add`` in batches;
- LanceDB, embedded (its default: no ANN index, so every search is an exact scan);
- latentspace over HTTP (``latentspace serve`` in a subprocess on 127.0.0.1): ingest
  through ``POST …/items`` (JSON numbers) and ``POST …/vectors`` (base64 float32), each
  into its own ``auto`` collection, with httpx; queries through ``POST …/search`` from one
  keep-alive client, the standard library's ``http.client``, with the query vector as
  base64 float32 (and, in the index column, as JSON numbers, whose printing alone costs
  the client about 0.5 ms, and through httpx, whose own per-request cost is several
  milliseconds);
- latentspace in-process (the service layer a Python program embeds, no HTTP), as it is
  and with the duplicate check that bulk vector writes skip unless asked
  (``on_duplicate=store``: each row searched against the stored ones before the write).

Ingest is timed until the data is searchable at full quality: for latentspace that includes
``flush``, which waits for a background index rebuild (``auto`` moves from exact search to
HNSW as the collection grows) and saves the index. Batches are 1,000 vectors. Query rate is
one query at a time, after 50 unrecorded queries, in three rounds with the systems taking
turns (all kept open), the median reported; recall@10 against exact NumPy search.
Writes the "peers" section of bench/RESULTS.md; ``--quick`` (5,000 vectors) only prints.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma: no telemetry attempts
os.environ.setdefault("LANCE_LOG", "error")  # LanceDB: no deprecation warning per query

BATCH, K, WARMUP, ROUNDS = 1000, 10, 50, 3
JSON = {"content-type": "application/json"}


@dataclass
class Row:
    system: str
    ingest_per_s: float
    recall: float
    qps: float
    note: str = ""
    search: Callable[[np.ndarray], list[int]] | None = field(default=None, repr=False)
    # before each later round: an idle keep-alive connection the server dropped is reopened
    reconnect: Callable[[], None] | None = field(default=None, repr=False)
    rounds: list[float] = field(default_factory=list)

    def measured(self) -> Row:
        """The row with its first round of queries recorded."""
        self.rounds.append(self.qps)
        return self


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(100, dim)).astype(np.float32)
    x = centres[rng.integers(0, 100, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def truth(x: np.ndarray, q: np.ndarray) -> list[set[int]]:
    scores = q @ x.T
    return [set(np.argpartition(-s, K)[:K].tolist()) for s in scores]


def recall(found: Sequence[Sequence[int]], exact: list[set[int]]) -> float:
    return float(np.mean([len(set(f) & e) / K for f, e in zip(found, exact, strict=True)]))


def timed_queries(search: Callable[[np.ndarray], list[int]], q: np.ndarray) -> tuple[float, list]:
    for v in q[:WARMUP]:
        search(v)
    started = time.perf_counter()
    found = [search(v) for v in q]
    return len(q) / (time.perf_counter() - started), found


def batches(n: int) -> Iterator[slice]:
    for start in range(0, n, BATCH):
        yield slice(start, min(start + BATCH, n))


# -- peers -------------------------------------------------------------------------------
def chroma(x: np.ndarray, q: np.ndarray, exact: list[set[int]], tmp: Path, stack: ExitStack) -> Row:
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp / "chroma"))
    col = client.create_collection("bench", configuration={"hnsw": {"space": "cosine"}})
    started = time.perf_counter()
    for part in batches(len(x)):
        col.add(ids=[str(i) for i in range(part.start, part.stop)], embeddings=x[part])
    ingest = len(x) / (time.perf_counter() - started)

    def search(v: np.ndarray) -> list[int]:
        ids = col.query(query_embeddings=v[None, :], n_results=K, include=[])["ids"][0]
        return [int(i) for i in ids]

    qps, found = timed_queries(search, q)
    name = f"Chroma {version('chromadb')}, embedded"
    return Row(name, ingest, recall(found, exact), qps, search=search).measured()


def lance(x: np.ndarray, q: np.ndarray, exact: list[set[int]], tmp: Path, stack: ExitStack) -> Row:
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(tmp / "lance"))
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), x.shape[1]))])
    table = db.create_table("bench", schema=schema)
    started = time.perf_counter()
    for part in batches(len(x)):
        flat = pa.array(x[part].reshape(-1), type=pa.float32())
        vectors = pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
        ids = pa.array(np.arange(part.start, part.stop), type=pa.int64())
        table.add(pa.Table.from_arrays([ids, vectors], schema=schema))
    ingest = len(x) / (time.perf_counter() - started)

    def search(v: np.ndarray) -> list[int]:
        found = table.search(v).distance_type("cosine").limit(K)
        hits = found.select(["id", "_distance"]).to_arrow()  # _distance: lance warns without
        return hits.column("id").to_pylist()

    qps, found = timed_queries(search, q)
    name = f"LanceDB {version('lancedb')}, embedded (no index: exact)"
    return Row(name, ingest, recall(found, exact), qps, search=search).measured()


# -- latentspace ---------------------------------------------------------------------------
@contextmanager
def served(data_dir: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LATENTSPACE_DATA_DIR": str(data_dir), "LATENTSPACE_API_KEYS": ""}
    cmd = [sys.executable, "-m", "latentspace.cli", "serve", "--port", str(port)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
    try:
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("latentspace serve did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def http_rows(
    x: np.ndarray, q: np.ndarray, exact: list[set[int]], tmp: Path, stack: ExitStack
) -> list[Row]:
    out = []
    base = stack.enter_context(served(tmp / "latentspace-http"))
    c = stack.enter_context(httpx.Client(base_url=base, timeout=600))
    # the server and its clients stay open for the later query rounds
    for name, how in (("json", "items"), ("b64", "vectors")):
        r = c.post("/v1/collections", json={"name": name, "dim": x.shape[1]})
        r.raise_for_status()
        started = time.perf_counter()
        for part in batches(len(x)):
            ids = [f"v{i}" for i in range(part.start, part.stop)]
            if how == "items":
                items = [{"id": i, "vector": v.tolist()} for i, v in zip(ids, x[part], strict=True)]
                r = c.post(f"/v1/collections/{name}/items", json={"items": items})
            else:
                data = base64.b64encode(x[part].tobytes()).decode()
                r = c.post(f"/v1/collections/{name}/vectors", json={"ids": ids, "vectors": data})
            r.raise_for_status()
        index = c.post(f"/v1/collections/{name}/flush").raise_for_status().json()["index"]
        ingest = len(x) / (time.perf_counter() - started)

        host, port = base.removeprefix("http://").split(":")
        lean = http.client.HTTPConnection(host, int(port))
        stack.callback(lean.close)

        def search(v: np.ndarray, name: str = name, lean: Any = lean) -> list[int]:
            vector = base64.b64encode(v.astype("<f4").tobytes()).decode()
            body = json.dumps({"query": {"vector": vector}, "k": K})
            lean.request("POST", f"/v1/collections/{name}/search", body, JSON)
            hits = json.loads(lean.getresponse().read())["results"]
            return [int(h["id"][1:]) for h in hits]

        def search_numbers(v: np.ndarray, name: str = name, lean: Any = lean) -> list[int]:
            body = json.dumps({"query": {"vector": v.tolist()}, "k": K})
            lean.request("POST", f"/v1/collections/{name}/search", body, JSON)
            hits = json.loads(lean.getresponse().read())["results"]
            return [int(h["id"][1:]) for h in hits]

        def search_httpx(v: np.ndarray, name: str = name) -> list[int]:
            body = {"query": {"vector": v.tolist()}, "k": K}
            hits = c.post(f"/v1/collections/{name}/search", json=body).json()["results"]
            return [int(h["id"][1:]) for h in hits]

        qps, found = timed_queries(search, q)
        numbers_qps, _ = timed_queries(search_numbers, q)
        httpx_qps, _ = timed_queries(search_httpx, q)
        label = "`POST …/items`, JSON numbers" if how == "items" else "`POST …/vectors`, base64"
        note = (
            f"auto → {index['kind']} (exact below {index['exact_limit']:,}); query vector "
            f"as base64; as JSON numbers {numbers_qps:,.0f} queries/s, and through an "
            f"httpx client {httpx_qps:,.0f}"
        )
        system = f"latentspace over HTTP, {label}"
        row = Row(system, ingest, recall(found, exact), qps, note, search, lean.close)
        out.append(row.measured())
    return out


def in_process(
    x: np.ndarray, q: np.ndarray, exact: list[set[int]], tmp: Path, stack: ExitStack
) -> list[Row]:
    from latentspace.service import collections, items, lifecycle
    from latentspace.service.search import search_vector
    from latentspace.service.tiers import DuplicatePolicy
    from latentspace.settings import Settings

    ctx = lifecycle.start(Settings(data_dir=tmp / "latentspace-local"))
    stack.callback(lifecycle.stop, ctx)
    # open until the later query rounds are done
    out = []
    # the bulk path as it is, and with the duplicate check asked for (on_duplicate=store)
    for name, policy in (("local", None), ("checked", DuplicatePolicy())):
        collections.create(ctx, name, dim=x.shape[1])
        started = time.perf_counter()
        for part in batches(len(x)):
            ids = [f"v{i}" for i in range(part.start, part.stop)]
            items.ingest_vectors(ctx, name, x[part], ids=ids, on_duplicate=policy)
        stats = collections.save(ctx, name)
        ingest = len(x) / (time.perf_counter() - started)

        def search(v: np.ndarray, name: str = name) -> list[int]:
            return [int(h.id[1:]) for h in search_vector(ctx, name, v, K)]

        qps, found = timed_queries(search, q)
        note = f"auto → {stats.index_kind} (exact below {stats.exact_limit:,})"
        system = "latentspace in-process (service layer)"
        if policy is not None:
            system += ", duplicates checked (`on_duplicate=store`)"
        out.append(Row(system, ingest, recall(found, exact), qps, note, search=search).measured())
    return out


def query_rounds(rows: list[Row], q: np.ndarray) -> None:
    """More rounds of the same queries, every system in turn while all stay open, so a
    slow spell of a shared machine falls on all of them; each row's rate is its median."""
    for _ in range(ROUNDS - 1):
        for row in rows:
            assert row.search is not None
            if row.reconnect is not None:
                row.reconnect()
            row.rounds.append(timed_queries(row.search, q)[0])
    for row in rows:
        row.qps = float(np.median(row.rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.n
    x, q = clustered(n, args.dim, 1), clustered(args.queries, args.dim, 2)
    exact = truth(x, q)
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        with ExitStack() as stack:
            for run in (chroma, lance):
                rows.append(run(x, q, exact, tmp, stack))
                print(rows[-1], flush=True)
            rows.extend(http_rows(x, q, exact, tmp, stack))
            print(*rows[-2:], sep="\n", flush=True)
            rows.extend(in_process(x, q, exact, tmp, stack))
            print(*rows[-2:], sep="\n", flush=True)
            query_rounds(rows, q)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    chroma_row = rows[0]
    lines = [
        f"`python bench/bench_peers.py` on {date.today()}: {machine()}. {n:,} unit vectors × "
        f"{args.dim} (100 clusters), {len(q)} held-out single queries, k = {K}, batches of "
        f"{BATCH:,}; recall@10 against exact NumPy search. Queries/s: the median of "
        f"{ROUNDS} rounds of all {len(q)} queries, the systems taking turns while all stay "
        "open (this VM's speed drifts by up to 2x within minutes; turns spread that over all "
        "of them). Ratios are to Chroma.",
        "",
        "| system | ingest vectors/s | × Chroma | recall@10 | queries/s | per round | × Chroma "
        "| index |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *[
            f"| {r.system} | {r.ingest_per_s:,.0f} | {r.ingest_per_s / chroma_row.ingest_per_s:.2f}"
            f" | {r.recall:.3f} | {r.qps:,.0f} | {' / '.join(f'{v:,.0f}' for v in r.rounds)}"
            f" | {r.qps / chroma_row.qps:.2f} | {r.note} |"
            for r in rows
        ],
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section("peers", "## Next to the embedded peers (bench_peers.py)\n\n" + text)


if __name__ == "__main__":
    main()
