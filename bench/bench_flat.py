"""Exact (flat) search: single and batched queries, next to NumPy's ``X @ q``.

    python bench/bench_flat.py [--n 50000] [--dim 384] [--queries 300] [--quick]

``--n`` unit vectors of ``--dim`` around 100 Gaussian centres (as issue 17 measured), and
``--queries`` held-out queries, k = 10, in one process:

- NumPy: ``X @ q`` and ``argpartition`` per query, and one ``Q @ X.T`` for the batch;
- FAISS ``IndexFlatIP`` with its default OpenMP threads, and with one thread;
- latentspace's service layer (``search_vector`` on a flat collection), one query a call,
  with the FAISS threads it sets.

Each row is the median of 3 runs. Writes the "flat" section of bench/RESULTS.md;
``--quick`` (10,000 vectors) only prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, dim)).astype(np.float32)
    x = centres[rng.integers(0, 100, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def per_second(run: Callable[[], None], count: int) -> float:
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n
    x, q = clustered(n, args.dim, 0), clustered(args.queries, args.dim, 1)
    k = 10
    rows: dict[str, float] = {}

    def numpy_single() -> None:
        for v in q:
            scores = x @ v
            np.argpartition(-scores, k)[:k]

    def numpy_batch() -> None:
        np.argpartition(-(q @ x.T), k, axis=1)[:, :k]

    rows["NumPy X @ q, one query at a time"] = per_second(numpy_single, len(q))
    rows["NumPy Q @ X.T, the whole batch"] = per_second(numpy_batch, len(q))
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(x)
    default_threads = faiss.omp_get_max_threads()
    for threads in (default_threads, 1):
        faiss.omp_set_num_threads(threads)

        def single() -> None:
            for i in range(len(q)):
                flat.search(q[i : i + 1], k)

        rows[f"FAISS IndexFlatIP, one query a call, {threads} thread(s)"] = per_second(
            single, len(q)
        )
        rows[f"FAISS IndexFlatIP, the whole batch, {threads} thread(s)"] = per_second(
            lambda: flat.search(q, k), len(q)
        )
    faiss.omp_set_num_threads(default_threads)
    rows["latentspace search_vector (flat), one query a call"] = service_rate(x, q, k)
    line = auto_line(args.dim, q, k)
    lines = [
        f"`python bench/bench_flat.py` on {date.today()}: {machine()}. {n:,} × {args.dim} "
        f"unit vectors, {len(q)} queries, k = {k}, in one process; median of 3 runs.",
        "",
        "| search | queries/s | ms/query |",
        "|---|---:|---:|",
        *[f"| {name} | {rate:,.0f} | {1000 / rate:.2f} |" for name, rate in rows.items()],
    ]
    text = "\n".join([*lines, "", line])
    print(text)
    if not args.quick:
        write_section("flat", "## Exact search (bench_flat.py)\n\n" + text)


def auto_line(dim: int, q: np.ndarray, k: int, budget_ms: float = 2.0) -> str:
    """Where ``auto`` draws its exact-search line here, and what a search there costs."""
    from latentspace.index import FaissIndex, IndexSpec
    from latentspace.index.cost import measure

    cost = measure()
    n = cost.limit(dim, budget_ms / 1000)
    index = FaissIndex(IndexSpec("flat"), dim)
    index.add(np.arange(n, dtype=np.int64), clustered(n, dim, 2))

    def run() -> None:
        for v in q:
            index.search(v[None, :], k)

    ms = 1000 / per_second(run, len(q))
    return (
        f"`auto`'s line for {budget_ms:g} ms (`LATENTSPACE_INDEX__EXACT_LATENCY_MS`): exact "
        f"search measured at {cost.seconds_per_value * 1e9:.3f} ns per stored value, so exact "
        f"below {n:,} vectors of {dim} dims; a flat index of that many answers one query in "
        f"{ms:.2f} ms (the index alone, one query a call, median of 3 runs)."
    )


def service_rate(x: np.ndarray, q: np.ndarray, k: int) -> float:
    from latentspace.service import collections, lifecycle
    from latentspace.service import items as item_service
    from latentspace.service.search import search_vector
    from latentspace.settings import Settings
    from latentspace.store.repository import ItemInput

    with tempfile.TemporaryDirectory() as tmp:
        ctx = lifecycle.start(Settings(data_dir=Path(tmp)))
        try:
            collections.create(ctx, "flat", dim=x.shape[1], index="flat")
            for start in range(0, x.shape[0], 5_000):
                batch = [
                    ItemInput(f"v{i}", "vector", f"s{i}", x[i])
                    for i in range(start, min(start + 5_000, x.shape[0]))
                ]
                item_service.write(ctx, "flat", batch)

            def run() -> None:
                for v in q:
                    search_vector(ctx, "flat", v, k)

            return per_second(run, len(q))
        finally:
            lifecycle.stop(ctx)


if __name__ == "__main__":
    main()
