"""LangChain: a ``VectorStore`` and an ``Embeddings`` over a latentspace server.

    from latentspace.integrations.langchain import LatentspaceVectorStore

    store = LatentspaceVectorStore(url="http://127.0.0.1:8000", collection="docs",
                                   model="st:all-MiniLM-L6-v2", api_key=KEY)
    store.add_texts(["..."], metadatas=[{"source": "manual"}])
    store.similarity_search("how do I ...", k=4, filter={"source": "manual"})
    retriever = store.as_retriever(search_type="mmr")

Without ``embedding`` the collection's own model embeds texts on the server (``model``
creates the collection when it does not exist). With a LangChain ``embedding`` the vectors
are computed here and stored with their texts in a raw-vector collection of their width,
created on the first write. Filters are the server's metadata filter DSL
(``{"source": "manual", "year": {"$gte": 2020}}``); MMR runs on the server.
Needs ``langchain-core`` (the ``langchain`` extra).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from latentspace.client import ClientError
from latentspace.integrations.remote import AsyncRemote, Remote

__all__ = ["LatentspaceEmbeddings", "LatentspaceVectorStore"]

_INCLUDE = ["metadata", "text"]
_EMBED_BATCH = 256


def _document(hit: dict[str, Any]) -> Document:
    return Document(
        id=hit["id"], page_content=hit.get("text") or "", metadata=hit.get("metadata") or {}
    )


def _items(
    texts: Sequence[str],
    metadatas: Sequence[dict[str, Any]] | None,
    ids: Sequence[str | None] | None,
    vectors: Sequence[Sequence[float]] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    # API items for texts (with their vectors when embedded here), and the ids they got.
    if metadatas is not None and len(metadatas) != len(texts):
        raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
    if ids is not None and len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    given = ids if ids is not None else [None] * len(texts)
    named = [i if i is not None else str(uuid.uuid4()) for i in given]
    items = []
    for n, text in enumerate(texts):
        item: dict[str, Any] = {"id": named[n], "text": text}
        item["metadata"] = dict(metadatas[n]) if metadatas is not None else {}
        if vectors is not None:
            item["vector"] = [float(v) for v in vectors[n]]
        items.append(item)
    return items, named


class LatentspaceEmbeddings(Embeddings):
    """Vectors of ``model`` from the server's OpenAI-compatible ``/v1/embeddings``."""

    def __init__(
        self, url: str, model: str, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.model = model
        self._url, self._key, self._timeout = url, api_key, timeout
        self._remote = Remote(url, api_key, timeout)

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "input": texts}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector a text, in order."""
        out: list[list[float]] = []
        for start in range(0, len(texts), _EMBED_BATCH):
            answer = self._remote.call(
                "POST", "/v1/embeddings", json=self._body(texts[start : start + _EMBED_BATCH])
            )
            out += [d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])]
        return out

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`embed_documents`."""
        remote = AsyncRemote(self._url, self._key, self._timeout)
        out: list[list[float]] = []
        try:
            for start in range(0, len(texts), _EMBED_BATCH):
                answer = await remote.call(
                    "POST", "/v1/embeddings", json=self._body(texts[start : start + _EMBED_BATCH])
                )
                out += [d["embedding"] for d in sorted(answer["data"], key=lambda d: d["index"])]
        finally:
            await remote.close()
        return out

    async def aembed_query(self, text: str) -> list[float]:
        """See :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]


class LatentspaceVectorStore(VectorStore):
    """A latentspace collection as a LangChain vector store.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000``.
        collection: the collection's name.
        embedding: compute vectors here with this model (None: the server embeds texts
            with the collection's model).
        api_key: an admin key to write, a read key to search (None: no auth).
        model: without ``embedding``, the model a missing collection is created with.
        timeout: seconds a request may take.
    """

    def __init__(
        self,
        url: str,
        collection: str,
        embedding: Embeddings | None = None,
        api_key: str | None = None,
        *,
        model: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url, self.collection, self.embedding, self.model = url, collection, embedding, model
        self._remote = Remote(url, api_key, timeout)
        self._async: tuple[str | None, float] = (api_key, timeout)
        self._ready = False

    @property
    def embeddings(self) -> Embeddings | None:
        """The client-side embedding model (None when the server embeds)."""
        return self.embedding

    def _aremote(self) -> AsyncRemote:
        # one per call: an httpx.AsyncClient belongs to the event loop it was first used on
        return AsyncRemote(self.url, *self._async)

    def _ensure(self, vectors: Sequence[Sequence[float]] | None) -> None:
        if self._ready:
            return
        if vectors is not None and vectors:
            self._remote.ensure_collection(self.collection, dim=len(vectors[0]))
        elif self.model is not None:
            self._remote.ensure_collection(self.collection, model=self.model)
        self._ready = vectors is not None or self.model is not None

    def _query(self, query: str | None, vector: Sequence[float] | None) -> dict[str, Any]:
        if vector is not None:
            return {"vector": [float(v) for v in vector]}
        if self.embedding is not None:
            return {"vector": self.embedding.embed_query(query or "")}
        return {"text": query}

    @staticmethod
    def _body(
        term: dict[str, Any], k: int, filter: dict[str, Any] | None, **extra: Any
    ) -> dict[str, Any]:
        return {"query": term, "k": k, "filter": filter, "include": _INCLUDE, **extra}

    # -- writes ----------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert texts by id (a new uuid4 where none is given); their ids."""
        texts = list(texts)
        if not texts:
            return []
        vectors = self.embedding.embed_documents(texts) if self.embedding is not None else None
        items, named = _items(texts, metadatas, ids, vectors)
        self._ensure(vectors)
        self._remote.upsert(self.collection, items)
        return named

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert documents (ids from ``ids=`` or each ``Document.id``); their ids."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return self.add_texts(
            [d.page_content for d in documents],
            [d.metadata for d in documents],
            ids=list(ids),
            **kwargs,
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the items of ``ids`` (every item when None); ids not stored are no error."""
        try:
            self._remote.delete(self.collection, ids=ids, filter=None if ids is not None else {})
        except ClientError as e:
            if e.status != 404:  # no collection: nothing to delete
                raise
        return True

    # -- reads -----------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents among ``ids`` (missing ones left out)."""
        try:
            return [_document(i) for i in self._remote.get(self.collection, ids)]
        except ClientError as e:
            if e.status != 404:  # no collection: nothing stored
                raise
            return []

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest the query, with their scores (cosine for cosine
        collections); ``filter`` is the server's metadata filter."""
        return self._search(self._query(query, None), k, filter, **kwargs)

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest the query."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents nearest a vector."""
        return [d for d, _ in self._search(self._query(None, embedding), k, filter, **kwargs)]

    def _search(
        self, term: dict[str, Any], k: int, filter: dict[str, Any] | None, **extra: Any
    ) -> list[tuple[Document, float]]:
        try:
            hits = self._remote.search(self.collection, self._body(term, k, filter, **extra))
        except ClientError as e:
            if e.status != 404:  # no collection: nothing to find
                raise
            return []
        return [(_document(h), float(h["score"])) for h in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents chosen by MMR (on the server) from the ``fetch_k`` nearest."""
        mmr = {"lambda": lambda_mult, "candidates": max(fetch_k, k)}
        return [d for d, _ in self._search(self._query(query, None), k, filter, mmr=mmr)]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` from a vector."""
        mmr = {"lambda": lambda_mult, "candidates": max(fetch_k, k)}
        return [d for d, _ in self._search(self._query(None, embedding), k, filter, mmr=mmr)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # cosine and inner-product scores are similarities already; an l2 score is the
        # negated squared distance
        found = self._remote.collection(self.collection)
        if found is not None and found.get("metric") == "l2":
            return lambda score: 1.0 - math.sqrt(max(-score, 0.0)) / math.sqrt(2)
        return lambda score: score

    # -- async -----------------------------------------------------------------------------
    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """See :meth:`add_texts`."""
        texts = list(texts)
        if not texts:
            return []
        embedding = self.embedding
        vectors = await embedding.aembed_documents(texts) if embedding is not None else None
        items, named = _items(texts, metadatas, ids, vectors)
        remote = self._aremote()
        try:
            if vectors:
                await remote.ensure_collection(self.collection, dim=len(vectors[0]))
            elif self.model is not None:
                await remote.ensure_collection(self.collection, model=self.model)
            await remote.upsert(self.collection, items)
        finally:
            await remote.close()
        return named

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """See :meth:`add_documents`."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return await self.aadd_texts(
            [d.page_content for d in documents],
            [d.metadata for d in documents],
            ids=list(ids),
            **kwargs,
        )

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """See :meth:`delete`."""
        remote = self._aremote()
        try:
            await remote.delete(self.collection, ids=ids, filter=None if ids is not None else {})
        except ClientError as e:
            if e.status != 404:
                raise
        finally:
            await remote.close()
        return True

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """See :meth:`get_by_ids`."""
        remote = self._aremote()
        try:
            return [_document(i) for i in await remote.get(self.collection, ids)]
        except ClientError as e:
            if e.status != 404:
                raise
            return []
        finally:
            await remote.close()

    async def _asearch(
        self, term: dict[str, Any], k: int, filter: dict[str, Any] | None, **extra: Any
    ) -> list[tuple[Document, float]]:
        remote = self._aremote()
        try:
            hits = await remote.search(self.collection, self._body(term, k, filter, **extra))
        except ClientError as e:
            if e.status != 404:
                raise
            return []
        finally:
            await remote.close()
        return [(_document(h), float(h["score"])) for h in hits]

    async def _aterm(self, query: str) -> dict[str, Any]:
        if self.embedding is not None:
            return {"vector": await self.embedding.aembed_query(query)}
        return {"text": query}

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """See :meth:`similarity_search_with_score`."""
        return await self._asearch(await self._aterm(query), k, filter, **kwargs)

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """See :meth:`similarity_search`."""
        found = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in found]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """See :meth:`similarity_search_by_vector`."""
        found = await self._asearch(self._query(None, embedding), k, filter, **kwargs)
        return [d for d, _ in found]

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """See :meth:`max_marginal_relevance_search`."""
        mmr = {"lambda": lambda_mult, "candidates": max(fetch_k, k)}
        found = await self._asearch(await self._aterm(query), k, filter, mmr=mmr)
        return [d for d, _ in found]

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> LatentspaceVectorStore:
        """A store (``url=``, ``collection=`` and the constructor's other keywords) holding
        ``texts``."""
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=list(ids) if ids is not None else None)
        return store
