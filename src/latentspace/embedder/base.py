"""The :class:`Encoder` protocol and the helpers every backend shares.

An encoder maps texts and/or images into one latent space. Its output contract is single and
strict: a float32 NumPy array of shape ``(n, dim)`` whose rows have unit L2 norm.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

from latentspace.errors import InvalidInput
from latentspace.settings import EncoderSettings
from latentspace.vectors import l2_normalise

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

__all__ = [
    "BaseEncoder",
    "Encoder",
    "ImageEncoder",
    "TextCache",
    "batched",
    "count_tokens",
    "count_words",
    "l2_normalise",
    "looks_like_path",
    "max_tokens",
    "state_dict_fingerprint",
]

T = TypeVar("T")


@runtime_checkable
class Encoder(Protocol):
    """Maps inputs into a latent space; every output row is float32 and L2-normalised."""

    @property
    def name(self) -> str:
        """The spec string the encoder was built from (e.g. ``tiny-shapes``)."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector this encoder returns."""
        ...

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the weights; vectors of different fingerprints never meet."""
        ...

    @property
    def modalities(self) -> frozenset[str]:
        """What it can embed: a subset of ``{"text", "image"}``."""
        ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns ``(len(texts), dim)`` float32, unit rows."""
        ...

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        """Embed decoded RGB images; returns ``(len(images), dim)`` float32, unit rows.

        Raises:
            UnsupportedModality: the encoder is text-only.
        """
        ...


@runtime_checkable
class ImageEncoder(Encoder, Protocol):
    """An encoder whose image path splits into a picklable preprocess and a batched forward.

    Bulk ingest runs ``preprocess`` in decode workers and ``encode_pixels`` on the model's
    device, so the model never waits for JPEG decoding.
    """

    @property
    def preprocess(self) -> Callable[[Image], torch.Tensor]:
        """Turns one RGB image into the model's input tensor ``(3, H, W)``."""
        ...

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed a preprocessed batch ``(n, 3, H, W)``; returns ``(n, dim)`` float32, unit rows."""
        ...


_WORDS = re.compile(r"\w+|[^\w\s]")


def count_words(text: str) -> int:
    """Words and punctuation marks in ``text``: the token count of a model without a tokenizer."""
    return len(_WORDS.findall(text))


def count_tokens(encoder: object, text: str) -> int:
    """``encoder.count_tokens(text)`` where the encoder has one, else :func:`count_words`."""
    counter = getattr(encoder, "count_tokens", None)
    return int(counter(text)) if callable(counter) else count_words(text)


def max_tokens(encoder: object) -> int | None:
    """The most tokens of a text ``encoder`` reads, where it says (and counts tokens)."""
    if not callable(getattr(encoder, "count_tokens", None)):
        return None
    window = getattr(encoder, "max_tokens", None)
    return int(window) if isinstance(window, int) else None


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def state_dict_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict: names, dtypes, shapes and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return digest.hexdigest()


def _byte_dtype() -> torch.dtype:
    import torch

    return torch.uint8


class TextCache:
    """A thread-safe LRU cache from text to its vector; ``capacity == 0`` disables it."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def encode(
        self, texts: Sequence[str], compute: Callable[[Sequence[str]], np.ndarray]
    ) -> np.ndarray:
        """Vectors for ``texts``, calling ``compute`` once for the distinct texts not cached."""
        if self._capacity == 0:
            return compute(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._entries.get(text)
                if vector is not None:
                    self._entries.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        with self._lock:
            self.hits += len(texts) - len(missing)  # repeats within a call count as hits
            self.misses += len(missing)
        if missing:
            fresh = compute(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    vector.setflags(write=False)
                    found[text] = vector
                    self._entries[text] = vector
                    self._entries.move_to_end(text)
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)


class BaseEncoder:
    """What every backend shares: identity, batching and the cached text path.

    Subclasses set ``_dim`` and implement :meth:`_encode_text_uncached`; they return
    float32 unit rows, which :meth:`encode_text` caches per text.
    """

    def __init__(self, *, name: str, fingerprint: str, settings: EncoderSettings) -> None:
        self._name = name
        self._fingerprint = fingerprint
        self._batch_size = settings.batch_size
        self._cache = TextCache(settings.text_cache_size)
        self._dim = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def text_cache(self) -> TextCache:
        """The LRU cache of text vectors (hits and misses are counted)."""
        return self._cache

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns ``(len(texts), dim)`` float32, unit rows."""
        if isinstance(texts, str):
            raise InvalidInput("encode_text takes a sequence of strings, not one string")
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._cache.encode(texts, self._encode_text_uncached)

    def _encode_text_uncached(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


def looks_like_path(target: str) -> bool:
    """True for spec targets meant as local paths rather than hub names."""
    return target.startswith(("/", "./", "../", "~")) or Path(target).expanduser().is_dir()
