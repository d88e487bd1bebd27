"""Model migration between two real image spaces: tiny-shapes → tiny-shapes-b.

    python bench/bench_migrate.py [--images 3000] [--sample 0.2] [--quick]

Two parts, both on generated shapes (every colour × shape alike), with the bundled models:

1. Adapter quality, with the shipped adapter code (``latentspace.index.adapter``): every
   image is encoded by both models; adapters old → new are fitted on a ``--sample`` share
   and served for the rest. Queries by the new model: the 32 prompts "a {colour} {shape}"
   and each held-out image ("more like this", itself left out). Relevant: the items of the
   query's colour and shape. Reported per space: recall@10 (the share of the top 10 that is
   relevant: every class holds more than 10), its share of the full re-encode's, and how
   much of the re-encode's top 10 the adapter's holds.
2. The migration job end to end, over the HTTP API in this process (SQLite, no network):
   the same images in a tiny-shapes collection, moved by ``POST …/migrate`` in ``reencode``
   and in ``adapter`` mode (sample as above); wall time from the request to the job's end,
   and the recall@10 the job reports for its adapter.

Writes the "migrate" section of bench/RESULTS.md; ``--quick`` (600 images) only prints.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bench_http import code_state

K = 10


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ranked(queries: np.ndarray, items: np.ndarray, leave_out: np.ndarray | None) -> np.ndarray:
    """Each query's top-K item positions (its own item, when given, left out)."""
    scores = queries @ items.T
    if leave_out is not None:
        scores[np.arange(len(queries)), leave_out] = -np.inf
    return np.argsort(-scores, axis=1)[:, :K]


def adapter_quality(args: argparse.Namespace) -> tuple[list[str], dict[str, float]]:
    from latentspace.embedder.models.shapes import COLOURS, SHAPES, generate
    from latentspace.embedder.registry import create_encoder
    from latentspace.index.adapter import fit_affine, fit_procrustes
    from latentspace.settings import EncoderSettings

    settings = EncoderSettings(device="cpu", batch_size=256)
    old_model, new_model = (create_encoder(s, settings) for s in ("tiny-shapes", "tiny-shapes-b"))
    shapes = generate(args.images, seed=2026)
    images = [s.image for s in shapes]
    labels = np.array([f"{s.colour} {s.shape}" for s in shapes])
    t0 = time.perf_counter()
    old, new = old_model.encode_images(images), new_model.encode_images(images)
    encode_s = time.perf_counter() - t0
    prompts = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    text_queries = new_model.encode_text([f"a {p}" for p in prompts])

    rng = np.random.default_rng(0)
    n = len(shapes)
    fit = np.zeros(n, bool)
    fit[rng.choice(n, int(args.sample * n), replace=False)] = True
    held = np.flatnonzero(~fit)
    t0 = time.perf_counter()
    procrustes = fit_procrustes(old[fit], new[fit])
    fit_s = {"procrustes": time.perf_counter() - t0}
    t0 = time.perf_counter()
    affine = fit_affine(old[fit], new[fit])
    fit_s["affine"] = time.perf_counter() - t0

    def served(adapter: Any) -> np.ndarray:
        # what the collection holds: re-encodes of the sample, adapted vectors of the rest
        out = adapter.apply(old)
        out[fit] = new[fit]
        return out

    spaces = {
        "full re-encode (tiny-shapes-b)": new,
        "orthogonal Procrustes adapter": served(procrustes),
        "affine least-squares adapter (ridge)": served(affine),
    }
    query_sets = {
        "32 text prompts": (text_queries, np.array(prompts), None),
        f"{len(held):,} held-out images": (new[held], labels[held], held),
    }
    truth_tops = {name: ranked(q, new, leave_out) for name, (q, _, leave_out) in query_sets.items()}
    rows, summary = [], {}
    for label, space in spaces.items():
        cells = []
        for name, (queries, wanted, leave_out) in query_sets.items():
            top = ranked(queries, space, leave_out)
            recall = float(np.mean(labels[top] == wanted[:, None]))
            truth = float(np.mean(labels[truth_tops[name]] == wanted[:, None]))
            overlap = float(
                np.mean(
                    [len(set(a) & set(b)) / K for a, b in zip(top, truth_tops[name], strict=True)]
                )
            )
            cells.append(f"{recall:.3f} | {recall / truth:.3f} | {overlap:.3f}")
            summary[f"{label}/{name}"] = recall / truth
        rows.append(f"| {label} | {' | '.join(cells)} |")
    lost = float(np.mean(labels[ranked(new[held], old, held)] == labels[held][:, None]))
    lines = [
        f"{n:,} generated shapes encoded by both models ({encode_s:.1f} s for both); adapters "
        f"fitted on {int(fit.sum()):,} of them ({args.sample:.0%}; Procrustes in "
        f"{fit_s['procrustes'] * 1000:.0f} ms, affine in {fit_s['affine'] * 1000:.0f} ms) and "
        "served for the rest, the sample itself re-encoded. Relevant: same colour and shape.",
        "",
        "| items served as | prompts: recall@10 | share of re-encode | top-10 overlap "
        "| images: recall@10 | share of re-encode | top-10 overlap |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Without any adapter, new-model image queries among the old vectors: recall@10 "
        f"{lost:.3f} (the two spaces share nothing).",
    ]
    return lines, summary


def _png(image: Any) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def migration_job(args: argparse.Namespace) -> list[str]:
    from fastapi.testclient import TestClient

    from latentspace.api import create_app
    from latentspace.embedder.models.shapes import generate
    from latentspace.settings import EncoderSettings, Settings

    shapes = generate(args.images, seed=2026)
    items = [
        {"id": f"s{i}", "image": _png(s.image), "metadata": {"colour": s.colour}}
        for i, s in enumerate(shapes)
    ]
    rows = []
    for mode in ("reencode", "adapter"):
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                data_dir=Path(data_dir),
                auth="off",
                encoder=EncoderSettings(device="cpu", batch_size=256),
            )
            with TestClient(create_app(settings)) as c:
                assert (
                    c.post(
                        "/v1/collections", json={"name": "m", "model": "tiny-shapes"}
                    ).status_code
                    == 201
                )
                for start in range(0, len(items), 500):
                    r = c.post(
                        "/v1/collections/m/items", json={"items": items[start : start + 500]}
                    )
                    assert r.status_code == 200, r.text
                body: dict[str, Any] = {"model": "tiny-shapes-b", "mode": mode}
                if mode == "adapter":
                    body["sample"] = int(args.sample * len(items))
                t0 = time.perf_counter()
                job = c.post("/v1/collections/m/migrate", json=body).json()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.05)
                    job = c.get(f"/v1/jobs/{job['id']}").json()
                wall = time.perf_counter() - t0
                assert job["state"] == "done", job
                result = job["params"]["result"]
                rows.append(
                    f"| {mode} | {result['reencoded']:,} | {result['adapted']:,} | {wall:.1f} s "
                    f"| {len(items) / wall:,.0f} | {result['adapter']} | "
                    f"{result['recall_at_10']:.3f} (on {result['held_out']}) |"
                )
    return [
        f"`POST …/migrate` on a collection of the same {len(items):,} images (PNG, SQLite, "
        "over the API in-process), from the request to the job's end, index rebuild included:",
        "",
        "| mode | re-encoded | adapted | wall | items/s | adapter kept | its held-out "
        "top-10 overlap with re-encode |",
        "|---|---:|---:|---:|---:|---|---:|",
        *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--sample", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images = 600
    from results import write_section

    started = time.perf_counter()
    quality, summary = adapter_quality(args)
    job = migration_job(args)
    minutes = (time.perf_counter() - started) / 60
    worst = min(summary[k] for k in summary if "re-encode" not in k)
    lines = [
        "## Model migration between two image spaces (`bench/bench_migrate.py`)",
        "",
        f"Run {date.today().isoformat()} on a {os.cpu_count()}-core CPU (no GPU), code "
        f"{code_state()}; whole run {minutes:.1f} min. Reproduce: "
        "`.venv/bin/python bench/bench_migrate.py`. tiny-shapes → tiny-shapes-b: the same "
        "recipe trained with two seeds, as a model and its retrained version are.",
        "",
        *quality,
        "",
        *job,
        "",
        f"- The worse adapter keeps {worst:.1%} of a full re-encode's recall@10 or more "
        "on both query sets, against the 95 % goal. Its top 10 holds fewer of the very items "
        "the re-encode's holds: within a colour and shape, tiny-shapes places the images "
        "almost on one point, so which of them come first is close to arbitrary in either "
        "space; what the top 10 is made of (the label recall) is what carries over.",
    ]
    body = "\n".join(lines) + "\n"
    print(f"\n{body}")
    if args.quick:
        print("--quick: bench/RESULTS.md left as it was")
    else:
        write_section("migrate", body)
        print("wrote the 'migrate' section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
