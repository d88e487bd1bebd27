"""Encoders: one shared instance per model spec, built on first use and timed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL.Image import Image

from latentspace.embedder import Encoder, create_encoder
from latentspace.errors import ModelMismatch
from latentspace.settings import EncoderSettings
from latentspace.types import TimingHook

__all__ = ["EncoderFactory", "EncoderPool"]

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
