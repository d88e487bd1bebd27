"""The keyword leg's costs: analysing text, rebuilding the BM25 matrix, and a query.

    python bench/bench_keyword.py [--sizes 1000,10000,100000] [--quick]

Passages are the CPython documentation corpus of bench/rag_corpus.py, repeated (with a
suffix word per copy so no two are identical) up to each size. For each size: seconds to
analyse every text once (what a restart costs, and what writes pay a text at a time), the
rebuild of the bm25s matrix the first query after a write pays, and the median latency of a
query on a fresh matrix (100 corpus summaries). In one process, one thread. Writes the
"keyword" section of bench/RESULTS.md; ``--quick`` (1,000 and 10,000) only prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latentspace.keyword import KeywordIndex
from rag_corpus import pairs
from results import machine, write_section


def measure(size: int, passages: list[str], queries: list[str]) -> dict[str, float]:
    texts = {i: f"{passages[i % len(passages)]} copy{i // len(passages)}" for i in range(size)}
    index = KeywordIndex()
    started = time.perf_counter()
    index.upsert(texts)
    analyse = time.perf_counter() - started
    started = time.perf_counter()
    index.search(queries[0], 10)  # the first query after writes rebuilds the matrix
    rebuild = time.perf_counter() - started
    latencies = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, 10)
        latencies.append(time.perf_counter() - started)
    index.upsert({size: "one more text after the matrix was built"})
    started = time.perf_counter()
    index.search(queries[0], 10)
    after_write = time.perf_counter() - started
    return {
        "analyse_s": analyse,
        "rebuild_s": rebuild,
        "query_ms": statistics.median(latencies) * 1000,
        "after_write_s": after_write,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    corpus = pairs()
    passages, queries = [p.passage for p in corpus], [p.query for p in corpus[:100]]
    lines = [
        f"`python bench/bench_keyword.py` on {date.today()}: {machine()}; one thread, in "
        "process. Passages from bench/rag_corpus.py repeated to each size.",
        "",
        "| texts | analyse all (s) | texts/s | matrix rebuild (s) | query p50 (ms) | "
        "first query after a write (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        m = measure(size, passages, queries)
        lines.append(
            f"| {size:,} | {m['analyse_s']:.2f} | {size / m['analyse_s']:,.0f} | "
            f"{m['rebuild_s']:.2f} | {m['query_ms']:.2f} | {m['after_write_s']:.2f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section("keyword", "## Keyword leg (bench_keyword.py)\n\n" + text)


if __name__ == "__main__":
    main()
