"""How long a snapshot and a restore take, and what the file weighs.

    python bench/bench_snapshot.py            # 50,000 × 384, writes the "snapshot" section
    python bench/bench_snapshot.py --quick    # 5,000 × 384, prints only

In-process on an embedded data directory (SQLite): ``--n`` unit vectors of ``--dim`` are
ingested with metadata, then ``service.snapshots.take`` writes the file, and
``service.snapshots.restore`` brings it back under another name (verifying every part,
inserting in one transaction, then building the index from SQL). The restored collection
is searched like the original: recall@10 of each against exact search, and how much of the
copy's top-10 is the original's (HNSW graphs built in another order differ a little).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench_peers import clustered, recall, truth
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from latentspace.service import collections, items, lifecycle, snapshots
    from latentspace.service.search import search_vector
    from latentspace.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="5,000 vectors; print only")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.n
    x = clustered(n, args.dim, seed=1)
    queries = clustered(args.queries, args.dim, seed=2)
    exact = truth(x, queries)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = lifecycle.start(Settings(data_dir=Path(tmp) / "data"))
        try:
            collections.create(ctx, "orig", dim=args.dim)
            for start in range(0, n, 1000):
                part = slice(start, min(start + 1000, n))
                ids = [f"v{i}" for i in range(part.start, part.stop)]
                meta = [{"n": i, "tag": f"t{i % 17}"} for i in range(part.start, part.stop)]
                items.ingest_vectors(ctx, "orig", x[part], ids=ids, metadata=meta)
            file = Path(tmp) / "orig.lsnap"
            started = time.perf_counter()
            snapshots.take(ctx, "orig", file)
            took = time.perf_counter() - started
            started = time.perf_counter()
            stats = snapshots.restore(ctx, file, name="copy")
            restored = time.perf_counter() - started
            assert stats.count == n, stats
            found: dict[str, list[list[int]]] = {"orig": [], "copy": []}
            for q in queries:
                for name, hits in found.items():
                    hits.append([int(h.id[1:]) for h in search_vector(ctx, name, q, 10)])
            overlap = np.mean(
                [len(set(a) & set(b)) / 10 for a, b in zip(*found.values(), strict=True)]
            )
            size = file.stat().st_size
        finally:
            lifecycle.stop(ctx)
    text = (
        f"`python bench/bench_snapshot.py` on {date.today()}: {machine()}. {n:,} items × "
        f"{args.dim} float32 (100 clusters) with two metadata fields, embedded SQLite, "
        "in-process.\n\n"
        "| step | seconds | items/s |\n|---|---:|---:|\n"
        f"| snapshot (read SQL, write and checksum the tar) | {took:.2f} | {n / took:,.0f} |\n"
        f"| restore (verify, one transaction, index from SQL: {stats.index_kind}) | "
        f"{restored:.2f} | {n / restored:,.0f} |\n\n"
        f"File: {size / 2**20:.1f} MiB ({size / n:,.0f} bytes an item). Over {args.queries} "
        f"held-out queries: recall@10 against exact search {recall(found['orig'], exact):.3f} "
        f"for the original and {recall(found['copy'], exact):.3f} for the restored copy; "
        f"{overlap:.3f} of the copy's top-10 is the original's."
    )
    print(text)
    if not args.quick:
        write_section("snapshot", "## Snapshots (bench_snapshot.py)\n\n" + text)


if __name__ == "__main__":
    main()
