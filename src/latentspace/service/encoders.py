"""Caller input → vectors: images decoded under the limits, texts checked, the collection's
encoder required for a modality (the encoders themselves are ``live.encoders``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL.Image import Image

from latentspace import limits
from latentspace.embedder import Encoder, decode_image
from latentspace.errors import InvalidInput, UnsupportedModality
from latentspace.live.encoders import EncoderPool
from latentspace.settings import LimitSettings
from latentspace.store.tables import CollectionRow

__all__ = ["decode_checked", "embed_texts", "require_encoder"]


def decode_checked(data: bytes, limits_: LimitSettings, *, name: str = "image") -> Image:
    """Decode image bytes under the byte and pixel limits (see ``decode_image``)."""
    limits.check_image_bytes(limits_, len(data), name=name)
    return decode_image(data, name=name, max_pixels=limits_.max_image_pixels)


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
    pool: EncoderPool, encoder: Encoder, texts: Sequence[str], limits_: LimitSettings
) -> np.ndarray:
    """Check each text against the limits, then embed them in one call."""
    for i, text in enumerate(texts):
        limits.check_text(limits_, text, name=f"text {i}" if len(texts) > 1 else "text")
    return pool.encode_text(encoder, texts)
