"""Intake: the items a caller sends, checked, hashed and embedded, ready to be written.

Each item is checked and embedded on its own, so one corrupt image in a batch of a thousand
is reported as that item's error and the rest are stored. Items whose id already holds the
same content reuse the stored vector instead of being re-encoded, which makes re-running an
ingest cheap. Images are decoded by a few threads (Pillow releases the GIL) and encoded in
batches of ``encoder.batch_size``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL.Image import Image

from latentspace import limits
from latentspace.atomic import atomic_write, sha256_file
from latentspace.embedder import Encoder
from latentspace.embedder.images import image_pixels, perceptual_hash
from latentspace.errors import EncoderError, InvalidInput, LatentspaceError, NotFound
from latentspace.live.damage import item_key
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.service.encoders import decode_checked, require_encoder
from latentspace.settings import LimitSettings
from latentspace.store import lookups
from latentspace.store import repository as repo
from latentspace.store.tables import CollectionRow
from latentspace.types import DuplicateTier, ItemKind, ItemStatus
from latentspace.vectors import as_vector, require_direction

__all__ = [
    "DamagedOriginal",
    "Duplicate",
    "ItemResult",
    "NewItem",
    "Prepared",
    "blob_path",
    "check_fields",
    "checked_original",
    "content_sha256",
    "embed",
    "identify",
    "original_intact",
    "original_key",
    "originals_whole",
    "read_blob",
    "reuse_stored",
    "write_blob",
]

SOURCES: tuple[ItemKind, ...] = ("text", "image", "vector")


def content_sha256(data: bytes | str) -> str:
    """sha256 (hex) of bytes, or of a text's UTF-8."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class NewItem:
    """An item to store: exactly one of ``text``, ``image`` (bytes) or ``vector``, or a
    ``vector`` with the ``text`` it was embedded from (stored as it is, not encoded).

    Without an ``id`` the content's sha256 is used, so sending the same content twice
    stores it once. ``unreadable`` carries why the transport could not read the item (bad
    base64, say): it is reported as that item's error.
    """

    id: str | None = None
    text: str | None = None
    image: bytes | None = None
    vector: Sequence[float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    uri: str | None = None
    document_id: str | None = None
    expires_at: datetime | None = None  # aware; None: the collection's ttl_seconds decides
    unreadable: InvalidInput | None = None


@dataclass(frozen=True)
class Duplicate:
    """The item another duplicates, the tier it falls in and the evidence: the cosine of
    their vectors and, for two images, the bits between their perceptual hashes."""

    id: str
    tier: DuplicateTier
    cosine: float | None
    hamming: int | None


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: created, updated, unchanged, skipped (a duplicate left
    out, see ``on_duplicate``) or error."""

    index: int
    id: str | None
    status: ItemStatus
    error: LatentspaceError | None = None
    duplicate_of: Duplicate | None = None


def blob_path(data_dir: Path, sha256: str) -> Path:
    """Where a stored original with this content hash lives."""
    return Path(data_dir) / "blobs" / sha256[:2] / sha256


class DamagedOriginal(NotFound):
    """A stored original whose file no longer holds the bytes of its sha256 (altered, cut
    short, swapped or unreadable): it is neither served nor encoded; uploading the image
    again rewrites it (:func:`write_blob`)."""


def read_blob(data_dir: Path, sha256: str) -> bytes | None:
    """A stored original's bytes, checked against their sha256; None when there is none.

    Raises:
        DamagedOriginal: the file is there but does not hold those bytes, or cannot be read.
    """
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        return None
    path = blob_path(data_dir, sha256)
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # removed since
        return None
    except OSError as e:
        raise DamagedOriginal(
            f"the stored original (sha256 {sha256}) cannot be read: {e.strerror or e}"
        ) from e
    if content_sha256(data) != sha256:
        raise DamagedOriginal(
            f"the stored original (sha256 {sha256}) no longer matches its sha256: "
            "the file was altered or damaged"
        )
    return data


def write_blob(data_dir: Path, sha256: str, data: bytes) -> bool:
    """Keep an original under its content hash (atomically): once per content, and again
    over a file that no longer holds these bytes, which repairs a damaged original.
    Returns whether the file was written."""
    path = blob_path(data_dir, sha256)
    try:
        if sha256_file(path) == sha256:  # content-addressed: it holds these bytes already
            return False
    except OSError:  # no file yet, or an unreadable one
        pass
    atomic_write(path, data)
    return True


def original_key(item_id: int) -> str:
    """The key damage to an item's stored original is recorded under (``/readyz``): a part
    of the item's own key, so a write that replaces or deletes the item clears it."""
    return f"{item_key(item_id)} original"


def checked_original(
    ctx: Context, collection: CollectionRow, item_id: int, sha256: str, external_id: str | None
) -> bytes | None:
    """An image item's stored original (:func:`read_blob`), or None when there is none. A
    damaged one is recorded under :func:`original_key` (``/readyz``); an intact read clears it.

    Raises:
        DamagedOriginal: the file no longer matches the item's sha256 (the detail says how
            to repair it).
    """
    key = original_key(item_id)
    try:
        data = read_blob(ctx.settings.data_dir, sha256)
    except DamagedOriginal as e:
        detail = f"{e}; upload the image again under the same id to repair it"
        if external_id is not None:
            detail = f"item {external_id!r}: {detail}"
        ctx.live.damage.record(collection, key, detail)
        raise DamagedOriginal(detail) from e
    if data is not None:
        ctx.live.damage.repaired(collection, key)
    return data


def original_intact(ctx: Context, collection: CollectionRow, item_id: int, sha256: str) -> bool:
    """Whether an image item's stored original is there and intact (see checked_original)."""
    try:
        return checked_original(ctx, collection, item_id, sha256, None) is not None
    except DamagedOriginal:
        return False


def originals_whole(ctx: Context, collection: CollectionRow, item_ids: Sequence[int]) -> None:
    """These items' originals were written again (or the items are gone): no damage left."""
    for item_id in item_ids:
        ctx.live.damage.repaired(collection, original_key(item_id))


def identify(i: int, item: NewItem, limit: LimitSettings) -> Prepared:
    """Check one item's source, id and metadata, and hash its content.

    Raises:
        InvalidInput: unreadable, not exactly one source, a bad id, text or metadata
            (LimitExceeded when over a limit).
    """
    if item.unreadable is not None:
        raise item.unreadable
    given = [s for s in SOURCES if getattr(item, s) is not None]
    if len(given) != 1 and given != ["text", "vector"]:
        raise InvalidInput(
            f"an item needs exactly one of text, image or vector (or a vector with its "
            f"text); got {given}"
        )
    kind = given[-1]
    if item.text is not None:
        limits.check_text(limit, item.text)
    if kind == "text":
        assert item.text is not None
        digest = content_sha256(item.text)
    elif kind == "image":
        assert item.image is not None
        digest = content_sha256(item.image)
    else:  # the vector, and the text it was embedded from (kept as given, never encoded)
        raw = as_vector(item.vector, name="vector").tobytes()
        digest = content_sha256(raw if item.text is None else raw + item.text.encode())
    external_id = item.id if item.id is not None else digest
    check_fields(
        limit,
        external_id=external_id,
        text=None,  # checked above, before it was hashed
        uri=item.uri,
        document_id=item.document_id,
        metadata=item.metadata,
    )
    return Prepared(i, external_id, kind, digest, item)


def check_fields(
    limit: LimitSettings,
    *,
    external_id: str,
    text: str | None,
    uri: str | None,
    document_id: str | None,
    metadata: dict[str, Any],
) -> None:
    """The checks every stored item's fields pass, whichever way it comes in (an upsert,
    a restored snapshot): a usable id, text within the limits, strings and metadata every
    database can store and query (finite numbers, valid Unicode, bounded depth and size).

    Raises:
        InvalidInput: naming the field (LimitExceeded when over a limit).
    """
    limits.check_id(external_id)
    if text is not None:
        limits.check_text(limit, text)
    for label, value in (("uri", uri), ("document_id", document_id)):
        if value is not None:
            limits.check_string(value, name=label)
    if uri is not None and len(uri) > limits.MAX_URI_CHARS:
        raise InvalidInput(f"uri: {len(uri)} characters, over {limits.MAX_URI_CHARS}")
    limits.check_json(limit, metadata, name="metadata")


@dataclass
class Prepared:
    """An item on its way in: identified and hashed; ``vector`` once embedded."""

    index: int
    external_id: str
    kind: ItemKind
    sha256: str
    item: NewItem
    vector: np.ndarray | None = None
    image: Image | None = None
    # an image's perceptual hash and pixel count, once decoded
    phash: int | None = None
    pixels: int | None = None
    # whether the vector was freshly embedded (not the stored one of an unchanged item)
    fresh: bool = True


def reuse_stored(ctx: Context, collection: CollectionRow, prepared: list[Prepared]) -> None:
    """Give text and image items whose id already holds the same content the stored
    vector, so they are not embedded again (a vector item brings its own)."""
    prepared = [p for p in prepared if p.kind != "vector"]
    if not prepared:
        return
    with ctx.sessions() as session:
        rows = lookups.ids_by_sha256(
            session=session, collection=collection, digests=[p.sha256 for p in prepared]
        )
        by_external = {
            (external, sha): item_id for sha, group in rows.items() for item_id, external in group
        }
        same = {
            p.index: by_external[(p.external_id, p.sha256)]
            for p in prepared
            if (p.external_id, p.sha256) in by_external
        }
        stored = repo.vectors_of(session=session, item_ids=list(same.values()), dim=collection.dim)
    for p in prepared:
        if p.index in same:
            p.vector = stored.get(same[p.index])
            p.fresh = p.vector is None


def embed(
    ctx: Context,
    collection: CollectionRow,
    prepared: list[Prepared],
    results: dict[int, ItemResult],
) -> None:
    """Embed every prepared item that has no vector yet; failures go into ``results``."""
    limit = ctx.settings.limits
    todo = [p for p in prepared if p.vector is None]
    encoder = None
    if any(p.kind in ("text", "image") for p in todo):
        try:
            encoder = collections.encoder_of(ctx, collection)
        except EncoderError as e:
            for p in todo:
                if p.kind != "vector":
                    results[p.index] = ItemResult(p.index, p.external_id, "error", e)
            todo = [p for p in todo if p.kind == "vector"]
    texts, images = [], []
    for p in todo:
        try:
            if p.kind == "vector":
                p.vector = as_vector(p.item.vector, dim=collection.dim, name="vector")
                if collection.metric == "cosine":
                    require_direction(p.vector, name="vector")
            elif p.kind == "text":
                require_encoder(encoder, collection, "text")
                texts.append(p)
            else:
                require_encoder(encoder, collection, "image")
                images.append(p)
        except LatentspaceError as e:
            results[p.index] = ItemResult(p.index, p.external_id, "error", e)
    batch = ctx.settings.encoder.batch_size
    # longest first over the whole request, then slices: each slice holds texts of about one
    # length, so a transformer pads little (sorting within each slice alone padded ~1.7x)
    texts.sort(key=lambda p: len(p.item.text or ""), reverse=True)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        assert encoder is not None
        vectors = ctx.live.encoders.encode_text(encoder, [p.item.text or "" for p in chunk])
        for p, v in zip(chunk, vectors, strict=True):
            p.vector = v
    if images:
        assert encoder is not None
        _embed_images(ctx, encoder, _within_budget(images, limit, results), results)


def _name(p: Prepared) -> str:
    return p.item.uri or f"item {p.external_id!r}"


def _within_budget(
    images: list[Prepared], limit: LimitSettings, results: dict[int, ItemResult]
) -> list[tuple[Prepared, int]]:
    # Each image's pixels from its header alone, and the request's running total against
    # max_request_pixels: a small body of highly compressible images must not turn into
    # gigabytes of decoded pixels (nor minutes of decoding).
    kept, total = [], 0
    for p in images:
        assert p.item.image is not None
        try:
            limits.check_image_bytes(limit, len(p.item.image), name=_name(p))
            pixels = image_pixels(p.item.image, name=_name(p), max_pixels=limit.max_image_pixels)
            total += pixels
            limits.check(
                limit, "max_request_pixels", total, "pixels decoded by this request", _name(p)
            )
        except LatentspaceError as e:
            results[p.index] = ItemResult(p.index, p.external_id, "error", e)
            continue
        kept.append((p, pixels))
    return kept


def _embed_images(
    ctx: Context,
    encoder: Encoder,
    images: list[tuple[Prepared, int]],
    results: dict[int, ItemResult],
) -> None:
    # Decode → encode → drop, in groups of at most batch_size images and decode_pixels
    # pixels (one image at least), so full-size images never pile up.
    settings = ctx.settings.encoder
    group: list[Prepared] = []
    pixels = 0
    for p, n in [*images, (None, 0)]:
        full = group and (
            p is None or len(group) >= settings.batch_size or pixels + n > settings.decode_pixels
        )
        if full:
            decoded = _decode_all(group, ctx.settings.limits, settings.decode_workers, results)
            if decoded:
                pictures = [d.image for d in decoded if d.image is not None]
                vectors = ctx.live.encoders.encode_images(encoder, pictures)
                for d, v in zip(decoded, vectors, strict=True):
                    d.vector, d.image = v, None
            group, pixels = [], 0
        if p is not None:
            group.append(p)
            pixels += n


def _decode_all(
    todo: list[Prepared], limit: LimitSettings, workers: int, results: dict[int, ItemResult]
) -> list[Prepared]:
    # Pillow releases the GIL while decoding, so threads decode a batch in parallel.
    def decode(p: Prepared) -> LatentspaceError | None:
        assert p.item.image is not None
        try:
            p.image = decode_checked(p.item.image, limit, name=_name(p))
            p.phash, p.pixels = perceptual_hash(p.image), p.image.width * p.image.height
        except LatentspaceError as e:
            return e
        return None

    if workers > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            errors = list(pool.map(decode, todo))
    else:
        errors = [decode(p) for p in todo]
    for p, error in zip(todo, errors, strict=True):
        if error is not None:
            results[p.index] = ItemResult(p.index, p.external_id, "error", error)
    return [p for p, error in zip(todo, errors, strict=True) if error is None]
