"""What fitting and reading a collection map costs, and whether its clusters are the data's.

    python bench/bench_map.py            # 50,000 × 384, writes the "map" section
    python bench/bench_map.py --quick    # 5,000 × 384, prints only

In-process on an embedded data directory: ``--n`` unit vectors around 100 Gaussian centres
(as ``bench_peers.py`` makes them) are ingested, the map job is run (UMAP, cosine; HDBSCAN)
and timed to done, then the map is read three ways: the first read after the fit, a read
with nothing written since (the cached answer), and a read after 1,000 more items are
written (placed from the fit's saved arrays, no refit). Cluster quality is the adjusted Rand
index of the HDBSCAN clusters against the generating centres (1.0 = the same partition;
points HDBSCAN leaves unclustered count as one more group).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench_peers import clustered
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def centres_of(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``clustered``'s vectors with the centre each one was drawn around."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(100, dim)).astype(np.float32)
    which = rng.integers(0, 100, n)
    x = centres[which] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert np.allclose(x, clustered(n, dim, seed), atol=1e-6)
    return x.astype(np.float32), which


def main() -> None:
    from sklearn.metrics import adjusted_rand_score

    from latentspace.service import collections, items, jobs, lifecycle, maps
    from latentspace.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--quick", action="store_true", help="5,000 vectors; print only")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.n
    x, which = centres_of(n, args.dim, seed=1)
    extra = clustered(1000, args.dim, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = lifecycle.start(Settings(data_dir=Path(tmp) / "data"))
        try:
            collections.create(ctx, "m", dim=args.dim)
            for start in range(0, n, 1000):
                ids = [f"v{i}" for i in range(start, min(start + 1000, n))]
                items.ingest_vectors(ctx, "m", x[start : start + 1000], ids=ids)
            started = time.perf_counter()
            job = maps.start(ctx, "m")
            while (info := jobs.get(ctx, job.id)).state in ("queued", "running"):
                time.sleep(0.1)
            fit = time.perf_counter() - started
            assert info.state == "done", info
            timings = []
            for write in (False, False, True):
                if write:
                    ids = [f"e{i}" for i in range(len(extra))]
                    items.ingest_vectors(ctx, "m", extra, ids=ids)
                started = time.perf_counter()
                view = maps.view(ctx, "m")
                timings.append(time.perf_counter() - started)
        finally:
            lifecycle.stop(ctx)
    fitted = {item_id: c for item_id, c in zip(view.ids, view.cluster.tolist(), strict=True)}
    found = [fitted[f"v{i}"] for i in range(n)]
    ari = adjusted_rand_score(which, found)
    noise = sum(c < 0 for c in found) / n
    text = (
        f"`python bench/bench_map.py` on {date.today()}: {machine()}. {n:,} items × "
        f"{args.dim} around 100 centres, embedded SQLite, in-process.\n\n"
        "| step | seconds |\n|---|---:|\n"
        f"| fit ({view.method}, HDBSCAN, names; the job from queued to done) | {fit:.1f} |\n"
        f"| first read after the fit | {timings[0]:.3f} |\n"
        f"| read again, nothing written (cached) | {timings[1]:.4f} |\n"
        "| read after 1,000 more items (placed from the fit's saved arrays) | "
        f"{timings[2]:.2f} |\n\n"
        f"{len(view.clusters)} clusters; adjusted Rand index against the 100 generating "
        f"centres {ari:.3f}; {noise:.1%} of the points in no cluster; {view.placed:,} placed "
        "without refitting."
    )
    print(text)
    if not args.quick:
        write_section("map", "## Collection map (bench_map.py)\n\n" + text)


if __name__ == "__main__":
    main()
