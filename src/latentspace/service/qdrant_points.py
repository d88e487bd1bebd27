"""Qdrant's points API over a collection's items: point ids, payloads, and the calls that
write, read, page through and count points (the ``/qdrant`` routes' use-cases).

A point is an item: its payload is the item's metadata, its vector the item's vector. A
Qdrant point id is an unsigned 64-bit integer or a UUID; it is stored as the item id in
decimal or as the UUID's canonical form (lower case, with hyphens), and read back as an
integer or that UUID. Items stored through the native API under other ids are shown with
those ids (strings), and may be read, changed and deleted by them here.

A point's vector is a list of numbers, or, in a collection with a model, Qdrant's
inference objects ``{"text": ...}`` (a Document) or ``{"image": base64}`` (an Image),
embedded by the collection's model on the server.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from latentspace import limits
from latentspace.errors import InvalidInput, NotFound
from latentspace.service import bulk, collections, items, replica
from latentspace.service.context import Context
from latentspace.service.intake import NewItem, identify
from latentspace.service.qdrant_filters import translate
from latentspace.store import lookups
from latentspace.store.tables import ItemRow

__all__ = [
    "bounded",
    "change_payload",
    "count",
    "delete",
    "item_id",
    "listed",
    "payload_of",
    "point_id",
    "query_input",
    "record",
    "retrieve",
    "scroll",
    "selection",
    "upsert",
    "wants_vector",
]

_UINT = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_UINT = 2**64 - 1
_NO_NAMES = "named vectors are not supported: a collection here has one unnamed vector"


def point_id(external_id: str) -> int | str:
    """The Qdrant id of an item: an integer where the item id is one in decimal."""
    if _UINT.fullmatch(external_id) and int(external_id) <= _MAX_UINT:
        return int(external_id)
    return external_id


def item_id(pid: object, where: str, *, new: bool = False) -> str:
    """The item id of Qdrant point id ``pid``. A new point (``new``) takes only what
    Qdrant takes: an unsigned 64-bit integer or a UUID.

    Raises:
        InvalidInput: naming ``where``.
    """
    if isinstance(pid, int) and not isinstance(pid, bool):
        if 0 <= pid <= _MAX_UINT:
            return str(pid)
        raise InvalidInput(f"{where}: point id {pid} is not an unsigned 64-bit integer")
    if isinstance(pid, str):
        try:
            return str(uuid.UUID(pid))
        except ValueError:
            if new:
                raise InvalidInput(
                    f"{where}: point id {pid!r} is neither an unsigned integer nor a UUID"
                ) from None
            return limits.check_id(pid, name=where)
    raise InvalidInput(f"{where}: a point id is an unsigned integer or a UUID, got {pid!r}")


def listed(value: object, where: str) -> list[str]:
    """The item ids of a list of point ids.

    Raises:
        InvalidInput: not a list, or a bad id (naming its position).
    """
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: a list of point ids")
    return [item_id(p, f"{where}[{i}]") for i, p in enumerate(value)]


def payload_of(metadata: dict[str, Any], selector: object) -> dict[str, Any] | None:
    """What ``with_payload`` asks to see of a payload: all (true), none (false, None),
    the keys of a list or of ``{"include": [...]}``, or all but ``{"exclude": [...]}``.

    Raises:
        InvalidInput: another form.
    """
    if selector is None or selector is False:
        return None
    if selector is True:
        return metadata
    if isinstance(selector, list):
        selector = {"include": selector}
    if isinstance(selector, dict) and len(selector) == 1:
        ((how, keys),) = selector.items()
        if how in ("include", "exclude") and isinstance(keys, list):
            keys = [str(k) for k in keys]
            if how == "include":
                return {k: metadata[k] for k in keys if k in metadata}
            return {k: v for k, v in metadata.items() if k not in keys}
    raise InvalidInput(
        "with_payload: true, false, a list of keys, {include: [...]} or {exclude: [...]}"
    )


def wants_vector(selector: object) -> bool:
    """Whether ``with_vector`` asks for the vector (true, or a list of vector names).

    Raises:
        InvalidInput: another form.
    """
    if selector is None or isinstance(selector, bool):
        return bool(selector)
    if isinstance(selector, list):
        return bool(selector)
    raise InvalidInput("with_vector: true, false or a list of vector names")


def record(row: ItemRow, vector: np.ndarray | None, with_payload: object) -> dict[str, Any]:
    """A stored item as Qdrant's ``Record``."""
    return {
        "id": point_id(row.external_id),
        "payload": payload_of(row.metadata_, with_payload),
        "vector": vector.tolist() if vector is not None else None,
        "shard_key": None,
        "order_value": None,
    }


def query_input(value: object, where: str) -> dict[str, Any]:
    """A vector, or an inference object, as the fields of a :class:`NewItem` or a query
    term: ``{"vector": [...]}``, ``{"text": ...}`` or ``{"image": bytes}``.

    Raises:
        InvalidInput: named, sparse or multi-vectors, or anything else.
    """
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return {"text": value["text"]}
        if isinstance(value.get("image"), str):
            try:
                return {"image": base64.b64decode(value["image"], validate=True)}
            except (binascii.Error, ValueError):
                raise InvalidInput(f"{where}.image: base64 of an image file") from None
        if "indices" in value:
            raise InvalidInput(f"{where}: sparse vectors are not supported")
        if list(value) == [""]:
            return query_input(value[""], where)
        raise InvalidInput(f"{where}: {_NO_NAMES}")
    if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
        raise InvalidInput(f"{where}: multi-vectors are not supported")
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    ):
        raise InvalidInput(f"{where}: a vector is a non-empty list of numbers")
    return {"vector": value}


def _points(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    # (item id, its content fields, its payload) of an upsert's points or batch
    for unsupported in ("update_filter", "shard_key"):
        if body.get(unsupported) is not None:
            raise InvalidInput(f"{unsupported} is not supported")
    if isinstance(body.get("points"), list):
        out = []
        for i, p in enumerate(body["points"]):
            where = f"points[{i}]"
            if not isinstance(p, dict) or "id" not in p or "vector" not in p:
                raise InvalidInput(f"{where}: a point is {{id, vector, payload}}")
            out.append(
                (
                    item_id(p["id"], f"{where}.id", new=True),
                    query_input(p["vector"], f"{where}.vector"),
                    _payload(p.get("payload"), f"{where}.payload"),
                )
            )
        return out
    batch = body.get("batch")
    if not isinstance(batch, dict):
        raise InvalidInput("give points: [{id, vector, payload}] or batch: {ids, vectors}")
    ids, vectors = batch.get("ids"), batch.get("vectors")
    if not isinstance(ids, list) or not isinstance(vectors, list) or len(ids) != len(vectors):
        raise InvalidInput("batch: ids and vectors are lists of one length")
    payloads = batch.get("payloads") or [None] * len(ids)
    if not isinstance(payloads, list) or len(payloads) != len(ids):
        raise InvalidInput("batch.payloads: a list as long as ids")
    return [
        (
            item_id(pid, f"batch.ids[{i}]", new=True),
            query_input(vector, f"batch.vectors[{i}]"),
            _payload(payload, f"batch.payloads[{i}]"),
        )
        for i, (pid, vector, payload) in enumerate(zip(ids, vectors, payloads, strict=True))
    ]


def _payload(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: a payload is an object")
    return value


def upsert(ctx: Context, name: str, body: dict[str, Any]) -> int:
    """Store the points of ``body`` (Qdrant's ``PointsList`` or ``PointsBatch``): each
    replaces the point of its id, payload included (the last of an id wins). All or
    nothing: every point is checked before any is written. Returns the oplog sequence
    the write reached (Qdrant's ``operation_id``).

    Raises:
        InvalidInput: a bad point, naming it; LimitExceeded: more than ``max_batch``.
        NotFound: no such collection.
    """
    points = {pid: (fields, payload) for pid, fields, payload in _points(body)}
    new = [NewItem(id=pid, metadata=payload, **fields) for pid, (fields, payload) in points.items()]
    limit = ctx.settings.limits
    limits.check_batch(limit, new, "points")
    for i, item in enumerate(new):
        try:
            identify(i, item, limit)
        except InvalidInput as e:
            raise type(e)(f"point {item.id}: {e}") from None
    collections.get(ctx, name)  # a missing collection is a 404 before the write
    results = items.ingest(ctx, name, new, report_duplicates=False)
    failed = next((r for r in results if r.error is not None), None)
    if failed is not None and failed.error is not None:
        raise type(failed.error)(f"point {failed.id}: {failed.error}")
    return replica.written_seq(ctx, name)


def selection(body: dict[str, Any]) -> tuple[list[str] | None, dict[str, Any] | None]:
    """The points a body selects: ids (``points``) or a translated ``filter``; exactly one.

    Raises:
        InvalidInput: both, neither, or a bad id or filter.
    """
    has_ids, has_filter = body.get("points") is not None, body.get("filter") is not None
    if has_ids == has_filter:
        raise InvalidInput("select points with exactly one of points: [ids] or filter")
    if has_ids:
        return listed(body["points"], "points"), None
    return None, translate(body["filter"]) or {}


def delete(ctx: Context, name: str, body: dict[str, Any]) -> int:
    """Delete the selected points (see :func:`selection`); the oplog sequence reached.

    Raises:
        InvalidInput, NotFound: see :func:`selection` and ``bulk.delete``.
    """
    ids, spec = selection(body)
    bulk.delete(ctx, name, ids=ids, filter=spec)
    return replica.written_seq(ctx, name)


def _at(document: dict[str, Any], path: str, *, make: bool) -> tuple[dict[str, Any], str] | None:
    # The object that holds the last part of a dot path, and that part.
    *parents, last = path.split(".")
    for part in parents:
        child = document.get(part)
        if not isinstance(child, dict):
            if not make:
                return None
            child = document[part] = {}
        document = child
    return document, last


def change_payload(ctx: Context, name: str, how: str, body: dict[str, Any]) -> int:
    """Qdrant's payload updates on the selected points: ``set`` (merge ``payload`` in,
    under the dot path ``key`` when given), ``overwrite`` (replace it), ``delete`` (remove
    ``keys``, dot paths), ``clear`` (empty it). The oplog sequence reached.

    Raises:
        InvalidInput: a bad payload, key, id or filter; NotFound: no such collection.
    """
    change: Callable[[dict[str, Any]], dict[str, Any]]
    if how in ("set", "overwrite"):
        payload = body.get("payload")
        if not isinstance(payload, dict):
            raise InvalidInput("payload: an object")
        key = body.get("key")
        if key is not None and (how == "overwrite" or not isinstance(key, str) or not key):
            raise InvalidInput("key: a dot path, with set payload only")

        def change(metadata: dict[str, Any]) -> dict[str, Any]:
            if how == "overwrite":
                return dict(payload)
            target = _at(metadata, key, make=True) if key else None
            if target is None:
                return {**metadata, **payload}
            holder, last = target
            old = holder.get(last)
            holder[last] = {**(old if isinstance(old, dict) else {}), **payload}
            return metadata

    elif how == "delete":
        keys = body.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise InvalidInput("keys: a list of payload keys (dot paths)")

        def change(metadata: dict[str, Any]) -> dict[str, Any]:
            for key in keys:
                target = _at(metadata, key, make=False)
                if target is not None:
                    target[0].pop(target[1], None)
            return metadata

    else:

        def change(metadata: dict[str, Any]) -> dict[str, Any]:
            return {}

    ids, spec = selection(body)
    bulk.rewrite_metadata(ctx, name, change, ids=ids, filter=spec)
    return replica.written_seq(ctx, name)


def retrieve(
    ctx: Context, name: str, ids: object, with_payload: object, with_vector: object
) -> list[dict[str, Any]]:
    """The stored points among ``ids`` as Qdrant ``Record``s (missing ids are left out).

    Raises:
        InvalidInput: a bad id or selector; NotFound: no such collection.
    """
    wanted = listed(ids, "ids")
    payload_of({}, with_payload)  # a bad selector is an error even when nothing is found
    found = bulk.get(ctx, name, wanted, with_vectors=wants_vector(with_vector))
    return [record(r, found.vectors.get(r.id), with_payload) for r in found.rows]


def bounded(value: object, default: int, low: int, high: int, where: str) -> int:
    """A whole number from ``low`` to ``high`` (``default`` when not given).

    Raises:
        InvalidInput: anything else, naming ``where``.
    """
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{where}: a whole number from {low} to {high}, got {value!r}")
    return value


def scroll(ctx: Context, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A page of points (that pass ``filter``) from point ``offset`` on, in the order they
    were first stored, and the ``next_page_offset`` (None at the end).

    Raises:
        InvalidInput: a bad filter, limit or offset, or ``order_by``; NotFound: no such
            collection, or an ``offset`` that names no point ever stored there.
    """
    if body.get("order_by") is not None:
        raise InvalidInput("order_by is not supported; scroll pages in the order points came")
    limit = bounded(body.get("limit"), 10, 1, ctx.settings.limits.max_batch, "limit")
    spec = translate(body.get("filter"))
    with_payload = body.get("with_payload", True)
    payload_of({}, with_payload)
    after = 0
    if body.get("offset") is not None:
        start = item_id(body["offset"], "offset")
        collection = collections.get(ctx, name)
        with ctx.sessions() as session:
            found_id = lookups.item_id_of(session=session, collection=collection, external_id=start)
        if found_id is None:
            raise NotFound(f"offset: no point {body['offset']!r} was ever stored in {name!r}")
        after = found_id - 1
    page, _ = bulk.scroll(
        ctx,
        name,
        filter=spec,
        limit=limit + 1,
        after=after,
        with_vectors=wants_vector(body.get("with_vector", False)),
    )
    rows = page.rows
    return {
        "points": [record(r, page.vectors.get(r.id), with_payload) for r in rows[:limit]],
        "next_page_offset": point_id(rows[limit].external_id) if len(rows) > limit else None,
    }


def count(ctx: Context, name: str, body: dict[str, Any]) -> dict[str, int]:
    """How many points pass ``filter`` (all without one); always exact.

    Raises:
        InvalidInput: a bad filter; NotFound: no such collection.
    """
    return {"count": bulk.count(ctx, name, translate(body.get("filter")))}
