"""LlamaIndex's vector store over a latentspace server: ``LatentspaceVectorStore``.

    store = LatentspaceVectorStore(url="http://localhost:8000", collection="docs", api_key=KEY)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store)
    )

A node is an item of a raw-vector collection: its id the node id (``li-`` and its sha256
when the server cannot take it), its vector the embedding, its ``text`` the node's text,
its metadata the node's plus reserved keys: ``ref_doc_id`` (a document's nodes are deleted
by a filter), ``_node_content`` and ``_node_type`` (the rest of the node, as
``llama_index.core.vector_stores.utils`` writes it, less text and metadata). Items other
clients wrote come back as TextNodes. ``MetadataFilters`` become the server's filter DSL
(:func:`to_filter`); ``MMR`` is the server's (``mmr_threshold`` is its lambda).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from latentspace.client import ClientError
from latentspace.errors import InvalidInput
from latentspace.integrations.remote import AsyncRemote, Remote
from latentspace.store.filters import matches, validate_filter

__all__ = ["RESERVED_KEYS", "LatentspaceVectorStore", "UnsupportedFilterError", "to_filter"]

CONTENT_KEY = "_node_content"
TYPE_KEY = "_node_type"
REF_DOC_KEY = "ref_doc_id"
RESERVED_KEYS = frozenset({CONTENT_KEY, TYPE_KEY, REF_DOC_KEY})
_HASHED = "li-"  # prefix of the ids that stand for node ids the server cannot take
_DEFAULT_LAMBDA = 0.5  # LlamaIndex's own MMR default
_MMR_CANDIDATES = 50  # the hits MMR chooses from, as the server's default
_T = TypeVar("_T")

_COMPARISONS = {  # EQ -> $eq, ..., CONTAINS -> $contains
    FilterOperator[name]: f"${name.lower()}"
    for name in ("EQ", "NE", "GT", "GTE", "LT", "LTE", "CONTAINS")
}


class UnsupportedFilterError(ValueError):
    """A LlamaIndex metadata filter the server's filter DSL cannot express."""


# -- filters -------------------------------------------------------------------------------
def _condition(f: MetadataFilter) -> dict[str, Any]:
    key, op, value = f.key, f.operator, f.value
    values = list(value) if isinstance(value, list) else [value]
    if op in _COMPARISONS:
        if isinstance(value, list):
            raise UnsupportedFilterError(f"{op.name} on {key!r} takes one value, not a list")
        return {key: {_COMPARISONS[op]: value}}
    if op in (FilterOperator.IN, FilterOperator.NIN):
        return {key: {"$in" if op is FilterOperator.IN else "$nin": values}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        parts = [{key: {"$contains": v}} for v in values]
        if len(parts) == 1:
            return parts[0]
        if not parts:  # any of nothing never holds; all of nothing holds where the key is
            return {key: {"$in": []}} if op is FilterOperator.ANY else {key: {"$exists": True}}
        return {"$or" if op is FilterOperator.ANY else "$and": parts}
    if op is FilterOperator.TEXT_MATCH:
        if not isinstance(value, str):
            raise UnsupportedFilterError(f"TEXT_MATCH on {key!r} takes a string, got {value!r}")
        # $contains is an element test on arrays too; $gte "" holds for every string only
        return {key: {"$contains": value, "$gte": ""}}
    if op is FilterOperator.IS_EMPTY:
        # Missing, null or "": an empty list cannot be told apart in the DSL (see the docs).
        return {"$or": [{key: {"$exists": False}}, {key: None}, {key: ""}]}
    raise UnsupportedFilterError(
        f"the filter operator {op.name} ({op.value!r}) on {key!r} has no equivalent in "
        "latentspace's filter DSL (no case-insensitive match); filter on a lower-cased copy "
        "of the field with TEXT_MATCH instead"
    )


def to_filter(filters: MetadataFilters) -> dict[str, Any]:
    """LlamaIndex's ``MetadataFilters`` as a latentspace filter (``{}``: everything).

    EQ NE GT GTE LT LTE IN NIN map to ``$eq`` … ``$nin``; CONTAINS (an element of a list, or
    a substring) to ``$contains``; ANY and ALL to ``$or`` / ``$and`` of ``$contains``;
    TEXT_MATCH to a substring of a string; IS_EMPTY to missing, null or ``""`` (the DSL has
    no test for an empty list, so a stored ``[]`` is not matched). AND and OR join, NOT is
    "none of"; nested ``MetadataFilters`` nest. The server compares values of the same JSON
    type only (``1`` never equals ``"1"``), and a dotted key is a path into nested metadata.

    Raises:
        UnsupportedFilterError: TEXT_MATCH_INSENSITIVE, a list where one value is wanted, or
            what the DSL's grammar refuses (a key, a value), saying what and where.
    """
    each = (
        to_filter(f) if isinstance(f, MetadataFilters) else _condition(f) for f in filters.filters
    )
    parts = [p for p in each if p]  # a nested empty filter holds everywhere
    condition = filters.condition or FilterCondition.AND
    if not parts:
        spec: dict[str, Any] = {}  # LlamaIndex: no filters hold for every node
    elif condition is FilterCondition.NOT:
        spec = {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    elif len(parts) == 1:
        spec = parts[0]
    else:
        spec = {"$or" if condition is FilterCondition.OR else "$and": parts}
    try:
        return validate_filter(spec)
    except InvalidInput as e:
        raise UnsupportedFilterError(str(e)) from e


# -- nodes and items -----------------------------------------------------------------------
def item_id(node_id: str) -> str:
    """The item id of a node: the node id itself, or ``li-`` and its sha256 when the server
    might not take it (see ``latentspace.limits.check_id``) or it could be such a digest."""
    usable = node_id.isprintable() and "/" not in node_id and node_id not in (".", "..")
    if usable and 0 < len(node_id) <= 256 and not node_id.startswith(_HASHED):
        return node_id
    return _HASHED + hashlib.sha256(node_id.encode("utf-8", "surrogatepass")).hexdigest()


def node_to_item(node: BaseNode) -> dict[str, Any]:
    """The API item that stores ``node`` (its embedding as the vector).

    Raises:
        ValueError: the node has no embedding, or its metadata uses a reserved key.
    """
    if node.embedding is None:
        raise ValueError(f"node {node.node_id!r} has no embedding: embed nodes before adding")
    if clash := sorted(RESERVED_KEYS & node.metadata.keys()):
        raise ValueError(f"node {node.node_id!r}: metadata keys {clash} are reserved")
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    as_text = bool(text.strip())  # the server stores no blank text: it stays in the content
    flat = node_to_metadata_dict(node, remove_text=as_text)
    content = json.loads(flat[CONTENT_KEY])
    metadata: dict[str, Any] = content.pop("metadata", None) or {}
    content["metadata"] = {}  # kept once, as the item's metadata (which the server can patch)
    metadata[CONTENT_KEY] = json.dumps(content, ensure_ascii=False)
    metadata[TYPE_KEY] = flat[TYPE_KEY]
    if node.ref_doc_id is not None:
        metadata[REF_DOC_KEY] = node.ref_doc_id
    item: dict[str, Any] = {
        "id": item_id(node.node_id),
        "vector": [float(x) for x in node.embedding],
        "metadata": metadata,
    }
    if as_text:
        item["text"] = text
    return item


def item_to_node(item: dict[str, Any]) -> BaseNode:
    """The node an item stores; an item another client wrote is a TextNode of its text."""
    metadata = dict(item.get("metadata") or {})
    text = item.get("text")
    if CONTENT_KEY not in metadata:
        return TextNode(id_=item["id"], text=text or "", metadata=metadata)
    node = metadata_dict_to_node(metadata, text)
    node.metadata = {k: v for k, v in metadata.items() if k not in RESERVED_KEYS}
    return node


def _result(hits: list[dict[str, Any]]) -> VectorStoreQueryResult:
    nodes = [item_to_node(h) for h in hits]
    return VectorStoreQueryResult(
        nodes=nodes, similarities=[float(h["score"]) for h in hits], ids=[n.node_id for n in nodes]
    )


def _filter_of(filters: MetadataFilters | None) -> dict[str, Any] | None:
    spec = to_filter(filters) if filters is not None else {}
    return spec or None


def _kept(items: list[dict[str, Any]], spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    # Items fetched by id, judged by the filter as the server would (same reference code).
    return [i for i in items if spec is None or matches(spec, i.get("metadata") or {})]


def _delete_plan(
    node_ids: list[str] | None, filters: MetadataFilters | None
) -> tuple[list[str] | None, dict[str, Any] | None]:
    # The item ids and the filter of a delete_nodes call.
    if node_ids is None and filters is None:
        raise ValueError("give node_ids or filters (clear() deletes every node)")
    ids = [item_id(n) for n in node_ids] if node_ids is not None else None
    return ids, to_filter(filters) if filters is not None else None


def search_body(query: VectorStoreQuery, **kwargs: Any) -> dict[str, Any]:
    """The search request of a LlamaIndex query.

    ``doc_ids`` restrict by ``ref_doc_id``, ``node_ids`` by item id (empty lists: not at all,
    as LlamaIndex's stores read them). MMR takes its lambda from ``query.mmr_threshold`` or
    the ``mmr_threshold`` keyword (default 0.5), its candidates from the ``mmr_prefetch_k``
    keyword (default 50; at least k).

    Raises:
        ValueError: no query embedding; NotImplementedError: a mode other than default and
            mmr; UnsupportedFilterError: see :func:`to_filter`.
    """
    if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
        raise NotImplementedError(
            f"LatentspaceVectorStore answers the default and mmr query modes, not "
            f"{query.mode.value!r}"
        )
    if query.query_embedding is None:
        raise ValueError("LatentspaceVectorStore searches by vector: give query_embedding")
    body: dict[str, Any] = {
        "query": {"vector": [float(x) for x in query.query_embedding]},
        "k": query.similarity_top_k,
        "include": ["metadata", "text"],
    }
    spec = _filter_of(query.filters)
    if query.doc_ids:
        docs = {REF_DOC_KEY: {"$in": list(query.doc_ids)}}
        spec = {"$and": [spec, docs]} if spec else docs
    if spec is not None:
        body["filter"] = spec
    if query.node_ids:  # [] from VectorStoreIndex.as_retriever: no restriction
        body["ids"] = [item_id(n) for n in query.node_ids]
    if query.mode is VectorStoreQueryMode.MMR:
        given = (query.mmr_threshold, kwargs.get("mmr_threshold"))
        lam = next((t for t in given if t is not None), _DEFAULT_LAMBDA)
        pool = int(kwargs.get("mmr_prefetch_k") or _MMR_CANDIDATES)
        body["mmr"] = {
            "lambda": lam,
            "candidates": max(pool, query.similarity_top_k),  # the server wants >= k
        }
    return body


# -- the store -----------------------------------------------------------------------------
class LatentspaceVectorStore(BasePydanticVectorStore):
    """Nodes in the latentspace collection ``collection`` of the server at ``url``.

    ``api_key``: an admin key to add and delete, a read key is enough to query. The first
    ``add`` creates the collection (cosine, the embeddings' dimension) unless it exists. A
    collection that does not exist holds nothing: reads find nothing, deletes delete nothing.
    """

    stores_text: bool = True
    url: str
    collection: str
    api_key: str | None = Field(default=None, exclude=True, repr=False)
    timeout: float = 60.0

    _remote: Remote = PrivateAttr()
    _aremote: AsyncRemote | None = PrivateAttr(default=None)
    _aloop: asyncio.AbstractEventLoop | None = PrivateAttr(default=None)
    _ready: bool = PrivateAttr(default=False)  # the collection exists

    def model_post_init(self, context: Any, /) -> None:
        """Make the HTTP client (nothing is requested until first use)."""
        self._remote = Remote(self.url, api_key=self.api_key, timeout=self.timeout)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes the store under."""
        return "LatentspaceVectorStore"

    @property
    def client(self) -> Remote:
        """The synchronous HTTP client."""
        return self._remote

    def _async(self) -> AsyncRemote:
        # An httpx.AsyncClient belongs to the event loop it first ran on: one per loop.
        loop = asyncio.get_running_loop()
        if self._aremote is None or self._aloop is not loop:
            self._aremote = AsyncRemote(self.url, api_key=self.api_key, timeout=self.timeout)
            self._aloop = loop
        return self._aremote

    def close(self) -> None:
        """Close the synchronous client's connections."""
        self._remote.close()  # the store cannot be used after this

    async def aclose(self) -> None:
        """Close the asynchronous client's connections (of the running event loop)."""
        if self._aremote is not None and self._aloop is asyncio.get_running_loop():
            await self._aremote.close()
            self._aremote = self._aloop = None

    def _run(self, call: Callable[[], _T]) -> _T | None:
        # What ``call`` answers, or None when it found no collection (not any other 404).
        try:
            return call()
        except ClientError as e:
            if e.status == 404 and self._remote.collection(self.collection) is None:
                return None
            raise

    async def _arun(self, call: Callable[[], Awaitable[_T]]) -> _T | None:
        try:
            return await call()
        except ClientError as e:
            if e.status == 404 and await self._async().collection(self.collection) is None:
                return None
            raise

    # -- writes ----------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert ``nodes`` (each with its embedding); their node ids.

        Raises:
            ValueError: a node without embedding, or a reserved metadata key.
            ClientError: the server refused a write (an embedding of another dimension…).
        """
        if items := [node_to_item(n) for n in nodes]:
            if not self._ready:
                self._remote.ensure_collection(self.collection, dim=len(items[0]["vector"]))
                self._ready = True
            self._remote.upsert(self.collection, items)
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """See :meth:`add`."""
        if items := [node_to_item(n) for n in nodes]:
            remote = self._async()
            if not self._ready:
                await remote.ensure_collection(self.collection, dim=len(items[0]["vector"]))
                self._ready = True
            await remote.upsert(self.collection, items)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id`` (one filtered delete)."""
        spec = {REF_DOC_KEY: ref_doc_id}
        self._run(lambda: self._remote.delete(self.collection, filter=spec))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """See :meth:`delete`."""
        spec = {REF_DOC_KEY: ref_doc_id}
        await self._arun(lambda: self._async().delete(self.collection, filter=spec))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes of ``node_ids`` and/or those matching ``filters`` (both: the
        listed nodes that match).

        Raises:
            ValueError: neither given; UnsupportedFilterError: see :func:`to_filter`.
        """
        ids, spec = _delete_plan(node_ids, filters)

        def run() -> int:
            if ids is None:
                return self._remote.delete(self.collection, filter=spec)
            if spec:  # the listed nodes that pass the filter
                ids[:] = [i["id"] for i in _kept(self._remote.get(self.collection, ids), spec)]
            return self._remote.delete(self.collection, ids=ids)

        self._run(run)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """See :meth:`delete_nodes`."""
        ids, spec = _delete_plan(node_ids, filters)
        remote = self._async()

        async def run() -> int:
            if ids is None:
                return await remote.delete(self.collection, filter=spec)
            if spec:
                ids[:] = [i["id"] for i in _kept(await remote.get(self.collection, ids), spec)]
            return await remote.delete(self.collection, ids=ids)

        await self._arun(run)

    def clear(self) -> None:
        """Delete every item of the collection (which stays, with its settings)."""
        self._run(lambda: self._remote.delete(self.collection, filter={}))

    async def aclear(self) -> None:
        """See :meth:`clear`."""
        await self._arun(lambda: self._async().delete(self.collection, filter={}))

    # -- reads -----------------------------------------------------------------------------
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """The stored nodes of ``node_ids`` (in that order, missing ones left out) and/or
        matching ``filters``; every node when neither is given.

        Raises:
            UnsupportedFilterError: see :func:`to_filter`.
        """
        spec = _filter_of(filters)

        def run() -> list[dict[str, Any]]:
            if node_ids is None:
                return list(self._remote.scroll(self.collection, filter=spec))
            return _kept(self._remote.get(self.collection, [item_id(n) for n in node_ids]), spec)

        return [item_to_node(i) for i in self._run(run) or []]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """See :meth:`get_nodes`."""
        spec, remote = _filter_of(filters), self._async()

        async def run() -> list[dict[str, Any]]:
            if node_ids is None:
                return [i async for i in remote.scroll(self.collection, filter=spec)]
            return _kept(await remote.get(self.collection, [item_id(n) for n in node_ids]), spec)

        return [item_to_node(i) for i in await self._arun(run) or []]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nearest nodes (cosine scores), filtered, or MMR's picks.

        Raises:
            ValueError, NotImplementedError, UnsupportedFilterError: see :func:`search_body`.
        """
        body = search_body(query, **kwargs)
        return _result(self._run(lambda: self._remote.search(self.collection, body)) or [])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """See :meth:`query`."""
        body = search_body(query, **kwargs)
        return _result(await self._arun(lambda: self._async().search(self.collection, body)) or [])
