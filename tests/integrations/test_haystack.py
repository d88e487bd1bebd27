"""The Haystack integration against a live server: Haystack's own document store suite, the
filter translation against Haystack's reference semantics, and retrieval end to end."""

from __future__ import annotations

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("haystack")

from haystack import Document, Pipeline
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy, FilterPolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    TEST_EMBEDDING_1,
    CountDocumentsByFilterTest,
    DocumentStoreBaseExtendedTests,
    create_filterable_docs,
)
from haystack.utils import Secret
from haystack.utils.filters import document_matches_filter
from tests.fixtures import ADMIN_KEY, make_settings, serve

from latentspace.integrations.haystack import (
    LatentspaceDocumentStore,
    LatentspaceEmbeddingRetriever,
)
from latentspace.integrations.haystack_filters import RESERVED, translate_filters
from latentspace.store.filters import matches

DIM = 768  # the suite's embeddings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(make_settings(tmp_path_factory.mktemp("haystack"))) as url:
        yield url


def _store(url: str, **kwargs: Any) -> Iterator[LatentspaceDocumentStore]:
    kwargs.setdefault("embedding_dim", DIM)
    store = LatentspaceDocumentStore(
        url=url, collection=f"hs-{uuid.uuid4().hex[:12]}", api_key=ADMIN_KEY, **kwargs
    )
    try:
        yield store
    finally:
        store.remote.drop(store.collection)
        store.close()


def _f32(embedding: list[float] | None) -> list[float] | None:
    return None if embedding is None else np.asarray(embedding, np.float32).tolist()


class TestDocumentStore(DocumentStoreBaseExtendedTests, CountDocumentsByFilterTest):
    """Haystack's conformance suite, unchanged but for the two points it leaves to a store:
    the default write policy (here FAIL) and how Documents compare (embeddings are float32
    on the server, so they are compared as float32)."""

    @pytest.fixture
    def document_store(self, server: str) -> Iterator[LatentspaceDocumentStore]:
        yield from _store(server)

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        assert [d.id for d in received] == [d.id for d in expected]
        for got, want in zip(received, expected, strict=True):
            assert _f32(got.embedding) == _f32(want.embedding), got.id
            assert replace(got, embedding=None) == replace(want, embedding=None)

    def test_write_documents(self, document_store: LatentspaceDocumentStore) -> None:
        docs = [Document(id="1", content="test doc 1"), Document(id="2", content="test doc 2")]
        assert document_store.write_documents(docs) == 2
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([Document(id="1", content="again")])
        self.assert_documents_are_equal(document_store.filter_documents(), docs)


# -- the filter translation against Haystack's reference --------------------------------------

_CONDITIONS: list[dict[str, Any]] = (
    [
        {"field": "meta.number", "operator": op, "value": value}
        for op in ("==", "!=", ">", ">=", "<", "<=")
        for value in (2, -2, 0, 2.0, None)
    ]
    + [
        {"field": "meta.date", "operator": op, "value": "1972-12-11T19:54:58"}
        for op in ("==", "!=", ">", ">=", "<", "<=")
    ]
    + [
        {"field": "meta.name", "operator": "in", "value": ["name_0", "zeros_doc"]},
        {"field": "meta.name", "operator": "not in", "value": ["name_0", "zeros_doc"]},
        {"field": "meta.number", "operator": "in", "value": [2, None]},
        {"field": "meta.number", "operator": "not in", "value": [2, None]},
        {"field": "meta.number", "operator": "in", "value": []},
        {"field": "meta.number", "operator": "not in", "value": []},
        {"field": "meta.no_embedding", "operator": "==", "value": True},
        {"field": "chapter", "operator": "==", "value": "intro"},  # a converted legacy filter
        {"field": "meta.missing.deeper", "operator": "!=", "value": 1},
    ]
)
_FILTERS: list[dict[str, Any]] = [
    *_CONDITIONS,
    *(
        {"operator": op, "conditions": conditions}
        for op in ("AND", "OR", "NOT")
        for conditions in (
            [],
            [_CONDITIONS[0]],
            [_CONDITIONS[5], {"field": "meta.chapter", "operator": "==", "value": "intro"}],
            [_CONDITIONS[-2], {"operator": "NOT", "conditions": [_CONDITIONS[20]]}],
        )
    ),
]


@pytest.mark.parametrize("haystack_filter", _FILTERS, ids=repr)
def test_translation_matches_haystack_semantics(haystack_filter: dict[str, Any]) -> None:
    """The server's reference semantics on the translated filter select the Documents
    Haystack's own matcher selects."""
    spec = translate_filters(haystack_filter)
    assert spec is not None
    docs = create_filterable_docs()
    expected = [d.id for d in docs if document_matches_filter(haystack_filter, d)]
    assert [d.id for d in docs if matches(spec, d.meta)] == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"field": "content", "operator": "==", "value": "x"},
        {"field": "meta._haystack.placeholder", "operator": "==", "value": True},
        {"field": "meta.has space", "operator": "==", "value": 1},
        {"field": "other.x", "operator": "==", "value": 1},
        {"field": "meta.x", "operator": "=~", "value": 1},
        {"field": "meta.x", "operator": ">", "value": True},
        {"field": "meta.x", "operator": "==", "value": [1]},
        {"operator": "XOR", "conditions": []},
        {"operator": "AND", "conditions": "no list"},
    ],
    ids=repr,
)
def test_untranslatable_filters_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        translate_filters(bad)


def test_searches_filter_as_haystack_does(server: str) -> None:
    """Searches apply the translated filters (through the server's payload index) with the
    semantics of Haystack's matcher too; Documents without an embedding are never hits."""
    for store in _store(server):
        docs = create_filterable_docs()
        store.write_documents(docs)
        for haystack_filter in _FILTERS:
            hits = store.embedding_retrieval(TEST_EMBEDDING_1, filters=haystack_filter, top_k=50)
            expected = {
                d.id
                for d in docs
                if d.embedding is not None and document_matches_filter(haystack_filter, d)
            }
            assert {d.id for d in hits} == expected, haystack_filter


def test_empty_filters_are_no_filter() -> None:
    assert translate_filters(None) is None
    assert translate_filters({}) is None


# -- round trips, serialization, retrieval ----------------------------------------------------


@pytest.fixture
def store(server: str) -> Iterator[LatentspaceDocumentStore]:
    yield from _store(server, embedding_dim=4)


def test_every_document_field_round_trips(store: LatentspaceDocumentStore) -> None:
    docs = [
        Document(
            id="full",
            content="all of it",
            meta={"nested": {"a": [1, 2.5, None, "é"]}, "flag": False, "f": 1.0},
            embedding=[0.1, 0.2, 0.3, 0.4],
            blob=ByteStream(b"\x00\xffbytes", mime_type="application/octet-stream", meta={"k": 1}),
            sparse_embedding=SparseEmbedding(indices=[3, 7], values=[0.5, 0.25]),
        ),
        Document(id="blank", content="  "),
        Document(id="bare"),
        Document(id="vector only", embedding=[1.0, 0.0, 0.0, 0.0]),
    ]
    assert store.write_documents(docs) == 4
    got = store.filter_documents()
    assert [_f32(d.embedding) for d in got] == [_f32(d.embedding) for d in docs]
    assert [replace(d, embedding=None) for d in got] == [replace(d, embedding=None) for d in docs]
    assert all(RESERVED not in d.meta for d in got)


def test_write_policies_and_repeated_ids(store: LatentspaceDocumentStore) -> None:
    first, second = Document(id="x", content="one"), Document(id="x", content="two")
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([first, second], policy=DuplicatePolicy.FAIL)
    assert store.count_documents() == 0
    assert store.write_documents([first, second], policy=DuplicatePolicy.SKIP) == 1
    assert store.filter_documents()[0].content == "one"
    assert store.write_documents([first, second], policy=DuplicatePolicy.OVERWRITE) == 1
    assert store.filter_documents()[0].content == "two"
    with pytest.raises(ValueError, match="reserved"):
        store.write_documents([Document(content="c", meta={RESERVED: 1})])


def test_reads_before_the_collection_exists(server: str) -> None:
    store = LatentspaceDocumentStore(url=server, collection="never-written", api_key=ADMIN_KEY)
    assert store.count_documents() == 0
    assert store.filter_documents() == []
    store.delete_documents(["a"])
    assert store.embedding_retrieval([1.0, 0.0]) == []
    store.close()


def test_the_collection_takes_the_first_embedding_size(server: str) -> None:
    for store in _store(server, embedding_dim=None):
        store.write_documents([Document(content="c", embedding=[0.5, 0.5, 0.5])])
        assert store.remote.collection(store.collection)["dim"] == 3  # type: ignore[index]


def test_store_and_retriever_serialize(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_HAYSTACK_KEY", ADMIN_KEY)
    store = LatentspaceDocumentStore(
        url=server, collection="c", embedding_dim=4, api_key=Secret.from_env_var("LS_HAYSTACK_KEY")
    )
    retriever = LatentspaceEmbeddingRetriever(
        document_store=store,
        filters={"field": "meta.a", "operator": "==", "value": 1},
        top_k=3,
        filter_policy=FilterPolicy.MERGE,
    )
    data = retriever.to_dict()
    assert data["init_parameters"]["document_store"]["init_parameters"]["api_key"] == {
        "type": "env_var",
        "env_vars": ["LS_HAYSTACK_KEY"],
        "strict": True,
    }
    again = LatentspaceEmbeddingRetriever.from_dict(data)
    assert again.to_dict() == data
    assert again.document_store.api_key.resolve_value() == ADMIN_KEY
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    # Haystack loads classes only from modules it is told to trust
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["latentspace.integrations"])
    assert loaded.to_dict() == pipeline.to_dict()
    with pytest.raises(ValueError, match="token"):
        LatentspaceDocumentStore(url=server, api_key="plain").to_dict()


def test_retrieval_end_to_end(store: LatentspaceDocumentStore) -> None:
    docs = [
        Document(id="east", content="east", meta={"side": "e"}, embedding=[1.0, 0.1, 0.0, 0.0]),
        Document(id="north", content="north", meta={"side": "n"}, embedding=[0.0, 1.0, 0.0, 0.0]),
        Document(id="west", content="west", meta={"side": "w"}, embedding=[-1.0, 0.0, 0.1, 0.0]),
        Document(id="no vector", content="kept out of searches", meta={"side": "e"}),
    ]
    store.write_documents(docs)
    retriever = LatentspaceEmbeddingRetriever(document_store=store, top_k=10)
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever)
    found = pipeline.run({"retriever": {"query_embedding": [1.0, 0.0, 0.0, 0.0]}})
    hits = found["retriever"]["documents"]
    assert [d.id for d in hits] == ["east", "north", "west"]
    assert hits[0].score == pytest.approx(1 / np.sqrt(1.01), abs=1e-5)
    assert hits[0].meta == {"side": "e"}
    assert hits[0].content == "east"
    assert hits[0].embedding is None
    assert [s.score for s in hits] == sorted((s.score for s in hits), reverse=True)
    side_n = {"field": "meta.side", "operator": "in", "value": ["n", "w"]}
    filtered = retriever.run(query_embedding=[1.0, 0.0, 0.0, 0.0], filters=side_n, top_k=1)
    assert [d.id for d in filtered["documents"]] == ["north"]
    with_vectors = LatentspaceEmbeddingRetriever(document_store=store, return_embedding=True)
    top = with_vectors.run(query_embedding=[0.0, 1.0, 0.0, 0.0], top_k=1)["documents"][0]
    assert top.id == "north"
    assert top.embedding == [0.0, 1.0, 0.0, 0.0]
    assert retriever.run(query_embedding=[1.0, 0.0, 0.0, 0.0], top_k=0) == {"documents": []}
    with pytest.raises(TypeError):
        LatentspaceEmbeddingRetriever(document_store=object())  # type: ignore[arg-type]


def test_a_model_collection_embeds_content(server: str, static_st_dir: str) -> None:
    for store in _store(server, embedding_dim=None, model=f"st:{static_st_dir}"):
        store.write_documents(
            [
                Document(id="cat", content="the cat and the dog"),
                Document(id="rocket", content="a rocket to the moon"),
                Document(id="empty"),
            ]
        )
        assert [d.embedding for d in store.filter_documents()] == [None, None, None]
        query = store.remote.get(store.collection, ["rocket"], include_vector=True)[0]["vector"]
        hits = LatentspaceEmbeddingRetriever(document_store=store).run(query_embedding=query)
        assert [d.id for d in hits["documents"]] == ["rocket", "cat"]
