"""Encoders: one shared instance per model spec, built on first use; caller input → vectors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL.Image import Image

from latentspace import limits
from latentspace.embedder import Encoder, create_encoder, decode_image
from latentspace.errors import InvalidInput, ModelMismatch, UnsupportedModality
from latentspace.settings import EncoderSettings, LimitSettings
from latentspace.store.tables import CollectionRow
from latentspace.types import TimingHook

__all__ = [
    "EncoderFactory",
    "EncoderPool",
    "TimingHook",
    "decode_checked",
    "embed_texts",
    "require_encoder",
]

logger = logging.getLogger(__name__)

EncoderFactory = Callable[[str, EncoderSettings], Encoder]


def _no_timing(what: str, label: str, seconds: float) -> None:
    del what, label, seconds


class EncoderPool:
    """Builds each spec's encoder once (lazily, thread-safely) and times every encode call."""

    def __init__(
        self,
        settings: EncoderSettings,
        *,
        factory: EncoderFactory | None = None,
        on_timing: TimingHook | None = None,
    ) -> None:
        self._settings = settings
        self._factory: EncoderFactory = factory or (lambda spec, s: create_encoder(spec, s))
        self._encoders: dict[str, Encoder] = {}
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self.on_timing: TimingHook = on_timing or _no_timing

    def get(self, spec: str) -> Encoder:
        """The encoder for ``spec`` (built on the first call; other specs are not blocked)."""
        encoder = self._encoders.get(spec)
        if encoder is not None:
            return encoder
        with self._lock:
            build_lock = self._building.setdefault(spec, threading.Lock())
        with build_lock:
            encoder = self._encoders.get(spec)
            if encoder is None:
                started = time.perf_counter()
                encoder = self._factory(spec, self._settings)
                logger.info(
                    "loaded encoder %s (dim %d) in %.2fs",
                    spec,
                    encoder.dim,
                    time.perf_counter() - started,
                )
                self._encoders[spec] = encoder
        return encoder

    def checked(self, spec: str, fingerprint: str) -> Encoder:
        """The encoder for ``spec``, refusing one whose weights differ from ``fingerprint``.

        Raises:
            ModelMismatch: the weights on this machine are not those the collection used.
        """
        encoder = self.get(spec)
        if encoder.fingerprint != fingerprint:
            raise ModelMismatch(
                f"model {spec!r} on this machine has fingerprint {encoder.fingerprint[:12]}…, "
                f"but the collection was built with {fingerprint[:12]}…; its vectors would "
                "not be comparable"
            )
        return encoder

    def encode_text(self, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
        """``encoder.encode_text`` with its time reported."""
        started = time.perf_counter()
        out = encoder.encode_text(texts)
        self.on_timing("encode", "text", time.perf_counter() - started)
        return out

    def encode_images(self, encoder: Encoder, images: Sequence[Image]) -> np.ndarray:
        """``encoder.encode_images`` with its time reported."""
        started = time.perf_counter()
        out = encoder.encode_images(images)
        self.on_timing("encode", "image", time.perf_counter() - started)
        return out


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
