"""Caller input → vectors: texts and image bytes checked against the limits, then encoded."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL.Image import Image

from latentspace.embedder import Encoder, decode_image
from latentspace.errors import InvalidInput, LimitExceeded, UnsupportedModality
from latentspace.service.encoders import EncoderPool
from latentspace.settings import LimitSettings
from latentspace.store.tables import CollectionRow

__all__ = [
    "check_text",
    "content_sha256",
    "decode_checked",
    "embed_texts",
    "require_encoder",
]


def content_sha256(data: bytes | str) -> str:
    """sha256 (hex) of bytes, or of a text's UTF-8."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def check_text(text: str, limits: LimitSettings, *, name: str = "text") -> str:
    """``text`` if it is non-blank and within ``max_text_chars``.

    Raises:
        InvalidInput: blank text.
        LimitExceeded: longer than the limit.
    """
    if not text.strip():
        raise InvalidInput(f"{name} is empty")
    if len(text) > limits.max_text_chars:
        raise LimitExceeded(
            f"{name} has {len(text)} characters, over the limit of {limits.max_text_chars}"
        )
    return text


def decode_checked(data: bytes, limits: LimitSettings, *, name: str = "image") -> Image:
    """Decode image bytes under the byte and pixel limits (see ``decode_image``)."""
    if len(data) > limits.max_image_bytes:
        raise LimitExceeded(
            f"{name} is {len(data)} bytes, over the limit of {limits.max_image_bytes}"
        )
    return decode_image(data, name=name, max_pixels=limits.max_image_pixels)


def require_encoder(encoder: Encoder | None, collection: CollectionRow, modality: str) -> Encoder:
    """The encoder, if the collection has one that embeds ``modality``.

    Raises:
        InvalidInput: a raw-vector collection (no model) was given text or an image.
        UnsupportedModality: the model cannot embed ``modality``.
    """
    if encoder is None:
        raise InvalidInput(
            f"collection {collection.name!r} stores raw vectors (no model); "
            f"it cannot embed {modality}: send vectors instead"
        )
    if modality not in encoder.modalities:
        raise UnsupportedModality(
            f"model {encoder.name!r} of collection {collection.name!r} cannot embed {modality}"
        )
    return encoder


def embed_texts(
    pool: EncoderPool, encoder: Encoder, texts: Sequence[str], limits: LimitSettings
) -> np.ndarray:
    """Check each text against the limits, then embed them in one call."""
    for i, text in enumerate(texts):
        check_text(text, limits, name=f"text {i}" if len(texts) > 1 else "text")
    return pool.encode_text(encoder, texts)
