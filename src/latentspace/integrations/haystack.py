"""Haystack 2 integration: a document store on a latentspace collection, and its retriever.

    store = LatentspaceDocumentStore(url="http://127.0.0.1:8000", embedding_dim=384)
    store.write_documents([Document(content="...", embedding=[...])])
    LatentspaceEmbeddingRetriever(document_store=store).run(query_embedding=[...])

A Document is the item of its id: ``content`` its text, ``embedding`` its vector (float32 on
the server: it reads back rounded to float32), ``meta`` its metadata, where filters apply. The
rest (``blob``, ``sparse_embedding``, blank content, whether it had an embedding) is kept in
the metadata under the reserved key ``_haystack``, never shown in ``meta``. The first write
creates the collection: of raw vectors (``embedding_dim``, or the size of the first embedding
written), or of a ``model`` (``"st:/path"``) that embeds Documents written without embedding.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DocumentStoreError, DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy, FilterPolicy, apply_filter_policy
from haystack.errors import FilterError
from haystack.utils import Secret

from latentspace.client import ClientError
from latentspace.integrations.haystack_filters import MATCH_ALL, RESERVED, translate_filters
from latentspace.integrations.remote import Remote

__all__ = ["API_KEY_ENV", "LatentspaceDocumentStore", "LatentspaceEmbeddingRetriever"]

API_KEY_ENV = "LATENTSPACE_API_KEY"  # where the API key is read from when none is given

T = TypeVar("T")
_SETTINGS = ("url", "collection", "model", "embedding_dim", "api_key", "metric", "timeout")


def _item(document: Document, dim: int, embeds: bool) -> dict[str, Any]:
    # The API item of a Document (``embeds``: the server embeds text sent without a vector).
    if RESERVED in document.meta:
        raise ValueError(f"meta key {RESERVED!r} is reserved for the document store")
    own: dict[str, Any] = {}
    item: dict[str, Any] = {"id": document.id}
    if document.content is not None:
        if document.content.strip():
            item["text"] = document.content
        else:
            own["content"] = document.content  # the server refuses blank text
    if document.embedding is not None:
        item["vector"] = list(document.embedding)
    else:
        own["embedding"] = False  # a vector the server holds is not the Document's
        if not embeds or "text" not in item:
            # TEMPORARY WORKAROUND, until the server stores items without a vector: a unit
            # vector marked "placeholder", which searches leave out (embedding_retrieval).
            item["vector"] = [1.0] + [0.0] * (dim - 1)
            own["placeholder"] = True
    if (blob := document.blob) is not None:
        data = base64.b64encode(blob.data).decode("ascii")
        own["blob"] = {"data": data, "mime_type": blob.mime_type, "meta": blob.meta}
    if document.sparse_embedding is not None:
        own["sparse_embedding"] = document.sparse_embedding.to_dict()
    item["metadata"] = {**document.meta, RESERVED: own} if own else dict(document.meta)
    return item


def _document(item: dict[str, Any], score: float | None = None) -> Document:
    # The Document an API item (or search hit) holds.
    meta = dict(item.get("metadata") or {})
    own: dict[str, Any] = meta.pop(RESERVED, None) or {}
    blob, sparse = own.get("blob"), own.get("sparse_embedding")
    return Document(
        id=item["id"],
        content=own.get("content", item.get("text")),
        blob=None
        if blob is None
        else ByteStream(base64.b64decode(blob["data"]), blob.get("meta") or {}, blob["mime_type"]),
        meta=meta,
        score=score,
        embedding=item.get("vector") if own.get("embedding", True) else None,
        sparse_embedding=None if sparse is None else SparseEmbedding.from_dict(sparse),
    )


class LatentspaceDocumentStore:
    """A Haystack DocumentStore on a latentspace collection; beyond the protocol it has
    ``*_by_filter`` methods, ``delete_all_documents`` and ``embedding_retrieval``."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        collection: str = "haystack",
        model: str | None = None,
        embedding_dim: int | None = None,
        api_key: Secret | str | None = None,
        metric: str = "cosine",
        timeout: float = 60.0,
    ) -> None:
        """Describe the store; nothing is sent to the server before the first call.

        Args:
            url: The latentspace server.
            collection: The collection holding the Documents (created on the first write).
            model: A model spec for a collection whose server embeds content.
            embedding_dim: A raw-vector collection's dimension (default: the size of the
                first embedding written).
            api_key: An admin key to write, a read key to read; default: the
                ``LATENTSPACE_API_KEY`` environment variable. A plain string becomes a token
                Secret, which ``to_dict`` refuses to write out.
            metric: The collection's metric when it is created.
            timeout: Seconds an HTTP request may take.

        Raises:
            ValueError: both ``model`` and ``embedding_dim``, or a dimension under 1.
        """
        if model is not None and embedding_dim is not None:
            raise ValueError("give model (the server embeds) or embedding_dim, not both")
        if embedding_dim is not None and embedding_dim < 1:
            raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
        self.url, self.collection, self.model = url, collection, model
        self.embedding_dim, self.metric, self.timeout = embedding_dim, metric, timeout
        if api_key is None:
            api_key = Secret.from_env_var(API_KEY_ENV, strict=False)
        self.api_key = Secret.from_token(api_key) if isinstance(api_key, str) else api_key
        self._remote: Remote | None = None
        self._dim: int | None = None

    @property
    def remote(self) -> Remote:
        """The server's HTTP client (opened on first use)."""
        if self._remote is None:
            key = self.api_key.resolve_value()
            self._remote = Remote(self.url, api_key=key or None, timeout=self.timeout)
        return self._remote

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        if self._remote is not None:
            self._remote.close()
            self._remote = None

    def to_dict(self) -> dict[str, Any]:
        """The store's settings (not its Documents), serialized as Haystack components are.

        Raises:
            ValueError: the API key is a token Secret (Haystack never writes tokens out).
        """
        return default_to_dict(self, **{name: getattr(self, name) for name in _SETTINGS})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentspaceDocumentStore:
        """The store :meth:`to_dict` serialized.

        Raises:
            DeserializationError: ``data`` is no serialized LatentspaceDocumentStore.
        """
        return default_from_dict(cls, data)

    def _call(self, call: Callable[[Remote], T], missing: T | None = None) -> T:
        # One server call; a problem becomes a DocumentStoreError, except a 404 (no
        # collection yet) when there is a ``missing`` answer for it.
        try:
            return call(self.remote)
        except ClientError as e:
            if missing is not None and e.status == 404:
                return missing
            raise DocumentStoreError(f"latentspace: {e}") from e

    def _scroll(self, spec: dict[str, Any] | None) -> list[dict[str, Any]]:
        # Every item that passes ``spec``, with its vector.
        none: list[dict[str, Any]] = []
        return self._call(lambda r: list(r.scroll(self.collection, spec, True)), missing=none)

    def _collection_dim(self, documents: Sequence[Document]) -> int:
        # The collection's dimension; the first write creates the collection.
        if self._dim is None:
            sizes = (len(d.embedding) for d in documents if d.embedding is not None)
            dim = None if self.model is not None else self.embedding_dim or next(sizes, None)
            found = self._call(lambda r: r.collection(self.collection))
            if found is None and self.model is None and dim is None:
                raise DocumentStoreError(
                    f"cannot create collection {self.collection!r}: give the store "
                    "embedding_dim or model, or write a Document with an embedding first"
                )
            found = found or self._call(
                lambda r: r.ensure_collection(
                    self.collection, model=self.model, dim=dim, metric=self.metric
                )
            )
            self._dim = int(found["dim"])
        return self._dim

    def count_documents(self) -> int:
        """How many Documents the store holds (0 before the collection exists).

        Raises:
            DocumentStoreError: the server answered with a problem.
        """
        return self._call(lambda r: r.count(self.collection), missing=0)

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """How many Documents match ``filters`` (empty: all of them).

        Raises:
            FilterError: a filter latentspace cannot apply (see ``haystack_filters``).
            DocumentStoreError: the server answered with a problem.
        """
        spec = translate_filters(filters)
        return self._call(lambda r: r.count(self.collection, spec), missing=0)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """The Documents that match ``filters``, with their embeddings, in the order they
        were first written (``None`` or empty filters: every Document).

        Raises:
            FilterError: a filter latentspace cannot apply (see ``haystack_filters``).
            DocumentStoreError: the server answered with a problem.
        """
        spec = translate_filters(filters)
        return [_document(item) for item in self._scroll(spec)]

    def write_documents(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """Write Documents; ``policy`` says what becomes of ids already stored.

        ``FAIL`` (and ``NONE``) refuses the write when an id is stored or comes twice;
        ``SKIP`` leaves stored ids alone (of a repeated id, the first wins); ``OVERWRITE``
        replaces them (the last wins). Returns how many Documents were written.

        Raises:
            ValueError: not a list of Documents, or a meta with the reserved key.
            DuplicateDocumentError: an id stored or repeated, under ``FAIL`` or ``NONE``.
            DocumentStoreError: the server refused the write.
        """
        ok = isinstance(documents, list | tuple) and all(isinstance(d, Document) for d in documents)
        if not ok:
            raise ValueError("write_documents takes a list of Documents")
        unique: dict[str, Document] = {}
        for document in documents:
            if document.id in unique:
                if policy in (DuplicatePolicy.NONE, DuplicatePolicy.FAIL):
                    raise DuplicateDocumentError(f"id {document.id!r} is written twice")
                if policy is DuplicatePolicy.SKIP:
                    continue
            unique[document.id] = document
        if not unique:
            return 0
        dim = self._collection_dim(list(unique.values()))
        if policy is not DuplicatePolicy.OVERWRITE:
            wanted = list(unique)  # Remote.get asks in requests the server takes
            stored = self._call(lambda r: {i["id"] for i in r.get(self.collection, wanted)})
            if stored and policy is not DuplicatePolicy.SKIP:
                raise DuplicateDocumentError(f"ids already stored: {sorted(stored)[:10]}")
            unique = {i: d for i, d in unique.items() if i not in stored}
        items = [_item(d, dim, embeds=self.model is not None) for d in unique.values()]
        return self._call(lambda r: r.upsert(self.collection, items))

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete the Documents of ``document_ids`` (ids not stored are ignored).

        Raises:
            DocumentStoreError: the server refused the delete.
        """
        self._call(lambda r: r.delete(self.collection, ids=document_ids), missing=0)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the Documents that match ``filters``; how many were deleted.

        Raises:
            FilterError: an empty filter (:meth:`delete_all_documents` empties the store),
                or one latentspace cannot apply.
            DocumentStoreError: the server refused the delete.
        """
        spec = translate_filters(filters)
        if spec is None:
            raise FilterError("delete_by_filter needs a filter; delete_all_documents empties")
        return self._call(lambda r: r.delete(self.collection, filter=spec), missing=0)

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge ``meta`` into the meta of the Documents that match ``filters`` (None values
        included); how many were updated. The matching Documents are read, then written back
        whole: a change another client makes in between is lost.

        Raises:
            FilterError: an empty filter, or one latentspace cannot apply.
            ValueError: ``meta`` holds the reserved key.
            DocumentStoreError: the server refused the read or the write.
        """
        spec = translate_filters(filters)
        if spec is None:
            raise FilterError("update_by_filter needs a filter")
        if RESERVED in meta:
            raise ValueError(f"meta key {RESERVED!r} is reserved for the document store")
        items = [
            {
                **{k: item[k] for k in ("id", "text", "vector") if item.get(k) is not None},
                "metadata": {**(item.get("metadata") or {}), **meta},
            }
            for item in self._scroll(spec)
        ]
        return self._call(lambda r: r.upsert(self.collection, items))

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """Delete every Document; ``recreate_index`` drops the collection too (the next write
        creates it again from the store's settings).

        Raises:
            DocumentStoreError: the server refused the delete.
        """
        if recreate_index:
            self._call(lambda r: r.drop(self.collection))
            self._dim = None
        else:
            self._call(lambda r: r.delete(self.collection, filter=MATCH_ALL), missing=0)

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        """The ``top_k`` Documents nearest to ``query_embedding`` that match ``filters``, best
        first, with their ``score`` (the collection's similarity), embeddings if asked.

        Raises:
            FilterError: a filter latentspace cannot apply.
            DocumentStoreError: the server refused the search (a vector of another size).
        """
        if top_k < 1:
            return []
        spec = translate_filters(filters)
        unplaced = {f"{RESERVED}.placeholder": {"$ne": True}}  # TEMPORARY: see _item
        body = {
            "query": {"vector": list(query_embedding)},
            "k": top_k,
            "filter": unplaced if spec is None else {"$and": [spec, unplaced]},
            "include": ["metadata", "text", *(["vector"] if return_embedding else [])],
        }
        hits: list[dict[str, Any]] = self._call(
            lambda r: r.search(self.collection, body), missing=[]
        )
        return [_document(hit, score=hit["score"]) for hit in hits]


@component
class LatentspaceEmbeddingRetriever:
    """Retrieves the Documents of a :class:`LatentspaceDocumentStore` nearest to an embedding."""

    def __init__(
        self,
        document_store: LatentspaceDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
        return_embedding: bool = False,
    ) -> None:
        """Configure the retriever.

        Args:
            document_store: The store to search.
            filters: Filters for every search (see ``filter_policy``).
            top_k: How many Documents a search returns at most.
            filter_policy: ``REPLACE`` (``run``'s filters replace these) or ``MERGE``.
            return_embedding: Give the retrieved Documents their embeddings.

        Raises:
            TypeError: ``document_store`` is no LatentspaceDocumentStore.
            ValueError: ``top_k`` under 1.
        """
        if not isinstance(document_store, LatentspaceDocumentStore):
            raise TypeError("document_store must be a LatentspaceDocumentStore")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.document_store, self.filters, self.top_k = document_store, filters, top_k
        policy = filter_policy
        self.filter_policy = FilterPolicy.from_str(policy) if isinstance(policy, str) else policy
        self.return_embedding = return_embedding

    def to_dict(self) -> dict[str, Any]:
        """The retriever and its store's settings, serialized as Haystack components are.

        Raises:
            ValueError: the store's API key is a token Secret.
        """
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
            return_embedding=self.return_embedding,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentspaceEmbeddingRetriever:
        """The retriever :meth:`to_dict` serialized.

        Raises:
            DeserializationError: ``data`` is no serialized retriever.
        """
        params = dict(data.get("init_parameters", {}))
        params["document_store"] = LatentspaceDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        """Retrieve the Documents nearest to ``query_embedding``.

        Args:
            query_embedding: The query vector.
            filters: Filters for this search, combined with the init filters by the policy.
            top_k: How many Documents at most (default: the init ``top_k``).

        Returns:
            ``{"documents": [...]}``, best first, each with its score.

        Raises:
            ValueError: ``top_k`` under 0.
            FilterError: a filter latentspace cannot apply.
            DocumentStoreError: the server refused the search.
        """
        top_k = self.top_k if top_k is None else top_k
        if top_k < 0:
            raise ValueError(f"top_k must be at least 0, got {top_k}")
        documents = self.document_store.embedding_retrieval(
            query_embedding=query_embedding,
            filters=apply_filter_policy(self.filter_policy, self.filters, filters),
            top_k=top_k,
            return_embedding=self.return_embedding,
        )
        return {"documents": documents}
