"""Conversions between the wire and the service: base64 payloads, form JSON, terms, hits."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import Response, UploadFile
from pydantic import BaseModel, ValidationError

from latentspace.api.errors import problem_for
from latentspace.api.schemas import (
    CollectionPublic,
    DuplicateOf,
    DuplicatePolicyIn,
    IndexInfo,
    ItemPublic,
    ItemStatus,
    JobPublic,
    KeywordSettings,
    LegPlace,
    PayloadIndexInfo,
    Problem,
    SearchHit,
    TermIn,
)
from latentspace.errors import InvalidInput, LatentspaceError, LimitExceeded
from latentspace.limits import over_limit
from latentspace.service import Hit, ItemResult, QueryTerm
from latentspace.service.collections import CollectionStats
from latentspace.service.jobs import JobInfo
from latentspace.service.terms import default_weight
from latentspace.service.tiers import DuplicatePolicy
from latentspace.settings import LimitSettings
from latentspace.store.tables import ItemRow, as_utc
from latentspace.types import DUPLICATE_ACTIONS

__all__ = [
    "collection_public",
    "decode_base64",
    "duplicate_policy",
    "floats_from_base64",
    "form_ids",
    "form_json",
    "form_metadata",
    "form_object",
    "hits_public",
    "item_image_bytes",
    "item_public",
    "item_status",
    "job_public",
    "json_response",
    "problem_of",
    "query_term",
    "upload_bytes",
]


def json_response(
    model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A model as its JSON response, serialised by pydantic's core at once.

    For the hot routes: a model a plain ``def`` route returns is validated again by FastAPI,
    on the thread pool (a second thread hop), before it is serialised. A model built here
    was validated when it was constructed, so the route declares ``response_model`` for the
    schema and returns this.
    """
    return Response(
        model.model_dump_json(), status_code, headers=headers, media_type="application/json"
    )


def floats_from_base64(data: str, *, name: str) -> np.ndarray:
    """Float32 values from base64 of their little-endian bytes.

    Raises:
        InvalidInput: not base64, or not a whole number of float32 values.
    """
    raw = decode_base64(data, name=name)
    if len(raw) % 4:
        raise InvalidInput(f"{name}: {len(raw)} bytes, not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def decode_base64(data: str, *, name: str = "image") -> bytes:
    """Bytes of a base64 string (a ``data:...;base64,`` prefix is allowed).

    Raises:
        InvalidInput: not valid base64.
    """
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"{name} is not valid base64: {e}") from e


def form_json(raw: str, *, field: str) -> Any:
    """The value of a multipart form field that carries JSON.

    Raises:
        InvalidInput: the field is not JSON (or nested past the parser's depth), naming it.
    """
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{field} is not JSON: {e}") from e
    except RecursionError:
        raise InvalidInput(f"{field}: JSON nested too deeply") from None


def form_object(raw: str | None, *, field: str) -> dict[str, Any] | None:
    """A form field that carries a JSON object (None when absent, blank or ``null``).

    Raises:
        InvalidInput: not JSON, or not an object.
    """
    if not raw:
        return None
    value = form_json(raw, field=field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object")
    return value


def query_term(term: TermIn, *, name: str = "term") -> QueryTerm:
    """The service's term for an API term."""
    return QueryTerm(
        text=term.text,
        image=decode_base64(term.image, name=f"{name} image") if term.image is not None else None,
        item=term.item,
        vector=floats_from_base64(term.vector, name=f"{name} vector")
        if isinstance(term.vector, str)
        else term.vector,
        direction=term.direction,
        keyword=term.keyword,
        weight=term.weight if term.weight is not None else default_weight(term.keyword),
        model=term.model,
    )


def _listed(vector: np.ndarray | None) -> list[float] | None:
    return vector.tolist() if vector is not None else None


def hits_public(hits: Sequence[Hit], include: Sequence[str]) -> list[SearchHit]:
    """Hits with the fields ``include`` names."""
    wanted = set(include)
    return [
        SearchHit(
            id=hit.id,
            score=hit.score,
            metadata=hit.metadata if "metadata" in wanted else None,
            text=hit.text if "text" in wanted else None,
            uri=hit.uri if "uri" in wanted else None,
            document_id=hit.document_id if "document_id" in wanted else None,
            sha256=hit.sha256 if "sha256" in wanted else None,
            vector=_listed(hit.vector) if "vector" in wanted else None,
            legs={n: LegPlace(rank=p.rank, score=p.score) for n, p in hit.legs.items()}
            if hit.legs
            else None,
        )
        for hit in hits
    ]


def item_public(row: ItemRow, vector: np.ndarray | None = None) -> ItemPublic:
    """A stored item as the API shows it."""
    return ItemPublic(
        id=row.external_id,
        kind=row.kind,
        sha256=row.sha256,
        text=row.text,
        uri=row.uri,
        metadata=row.metadata_,
        document_id=row.document_id,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
        expires_at=as_utc(row.expires_at).isoformat() if row.expires_at is not None else None,
        vector=_listed(vector),
    )


def problem_of(error: LatentspaceError, instance: str | None = None) -> Problem:
    """A per-item problem (inside a batch answer)."""
    status, kind = problem_for(error)
    return Problem(
        type=f"/problems/{kind}",
        title=kind.replace("-", " ").capitalize(),
        status=status,
        detail=str(error),
        instance=instance,
    )


def item_status(result: ItemResult) -> ItemStatus:
    """One item's status in a batch answer."""
    dup = result.duplicate_of
    return ItemStatus(
        index=result.index,
        id=result.id,
        status=result.status,
        error=problem_of(result.error) if result.error is not None else None,
        duplicate_of=DuplicateOf(id=dup.id, tier=dup.tier, cosine=dup.cosine, hamming=dup.hamming)
        if dup is not None
        else None,
    )


def item_image_bytes(data: str | None, i: int) -> tuple[bytes | None, InvalidInput | None]:
    """The bytes of item ``i``'s base64 image, or why they cannot be read (not raised, so
    the batch goes on and the item reports it)."""
    if data is None:
        return None, None
    try:
        return decode_base64(data, name=f"item {i} image"), None
    except InvalidInput as e:
        return None, e


def form_metadata(raw: str | None, count: int) -> list[dict[str, Any]]:
    """The ``metadata`` form field: one JSON object for every file, or one per file.

    Raises:
        InvalidInput: neither.
    """
    if raw is None or not raw.strip():
        return [{} for _ in range(count)]
    value = form_json(raw, field="metadata")
    if value is None:
        return [{} for _ in range(count)]
    if isinstance(value, dict):
        return [dict(value) for _ in range(count)]
    if isinstance(value, list) and len(value) == count and all(isinstance(v, dict) for v in value):
        return value
    raise InvalidInput(
        "metadata must be one JSON object (for every file) or a list of one object per file"
    )


def duplicate_policy(value: str | DuplicatePolicyIn | None) -> DuplicatePolicy | None:
    """The ``on_duplicate`` of a request (None: none given). A form field holds one of
    ``store``, ``skip``, ``reject`` or a JSON object of them per tier.

    Raises:
        InvalidInput: neither.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        word = value.strip()
        for action in DUPLICATE_ACTIONS:
            if word == action:
                return DuplicatePolicy.every(action)
        try:
            value = DuplicatePolicyIn.model_validate(form_json(word, field="on_duplicate"))
        except ValidationError as e:
            raise InvalidInput(
                "on_duplicate must be store, skip or reject, or a JSON object of them per tier "
                f"(identical, same_image, similar): {e.errors()[0]['msg']}"
            ) from None
    return DuplicatePolicy(value.identical, value.same_image, value.similar)


def form_ids(raw: str | None, count: int) -> list[str | None]:
    """The ``ids`` form field: a JSON list of one id per file (None each when absent).

    Raises:
        InvalidInput: not such a list.
    """
    if raw is None or not raw.strip():
        return [None] * count
    value = form_json(raw, field="ids")
    if value is None:
        return [None] * count
    if not (
        isinstance(value, list) and len(value) == count and all(isinstance(v, str) for v in value)
    ):
        raise InvalidInput("ids must be a JSON list of one string per file")
    return value


def upload_bytes(
    upload: UploadFile, limits: LimitSettings, *, name: str
) -> tuple[bytes | None, LimitExceeded | None]:
    """An uploaded file's bytes, or the error that it is over ``max_image_bytes``, naming
    its real size when the upload declares it (never reading more than the limit + 1)."""
    limit = limits.max_image_bytes
    if upload.size is not None and upload.size > limit:
        return None, over_limit("max_image_bytes", limit, upload.size, "bytes", name)
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        return None, over_limit("max_image_bytes", limit, len(data), "bytes or more", name)
    return data, None


def collection_public(stats: CollectionStats) -> CollectionPublic:
    """What the API reports of a collection."""
    return CollectionPublic(
        name=stats.name,
        model=stats.model,
        dim=stats.dim,
        metric=stats.metric,
        fingerprint=stats.fingerprint,
        count=stats.count,
        index=IndexInfo(
            requested=stats.index_requested,
            kind=stats.index_kind,
            params=stats.index_params,
            quantization=stats.quantization,
            quantization_requested=stats.quantization_requested,  # type: ignore[arg-type]
            rescore=stats.rescore,
            bytes=stats.index_bytes,
            rebuilding=stats.rebuilding,
            recall_target=stats.recall_target,
            below_target=stats.recall_at_10 is not None
            and stats.recall_at_10 < stats.recall_target,
            recall_at_10=stats.recall_at_10,
            unavailable=stats.unavailable,
            exact_limit=stats.exact_limit,
        ),
        keyword=KeywordSettings.model_validate(stats.keyword),
        created_at=stats.created_at,
        ttl_seconds=stats.ttl_seconds,
        payload_index=PayloadIndexInfo.model_validate(stats.payload_index)
        if stats.payload_index is not None
        else None,
    )


def job_public(info: JobInfo) -> JobPublic:
    """What the API reports of a background job."""
    return JobPublic(
        id=info.id,
        collection=info.collection,
        kind=info.kind,
        state=info.state,
        done=info.done,
        total=info.total,
        params=info.params,
        error=info.error,
        created_at=info.created_at,
        updated_at=info.updated_at,
    )
