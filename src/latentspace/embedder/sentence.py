"""sentence-transformers backend: text-only encoders for RAG collections."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentspace.embedder.base import (
    BaseEncoder,
    l2_normalise,
    looks_like_path,
    state_dict_fingerprint,
)
from latentspace.embedder.device import DevicePlan, plan_device
from latentspace.embedder.hub import offline_hint, require_hub, st_location
from latentspace.embedder.installed import installed_copy
from latentspace.errors import (
    InvalidInput,
    ModelInvalid,
    ModelUnavailable,
    UnsupportedModality,
)
from latentspace.settings import EncoderSettings

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["SentenceTransformerEncoder"]

logger = logging.getLogger(__name__)


class SentenceTransformerEncoder(BaseEncoder):
    """A sentence-transformers model; embeds text only."""

    def __init__(
        self, model: Any, *, name: str, plan: DevicePlan, settings: EncoderSettings
    ) -> None:
        fingerprint = state_dict_fingerprint(model.state_dict())
        super().__init__(name=name, fingerprint=fingerprint, settings=settings)
        self._model = model
        self._plan = plan
        # sentence-transformers 6 renamed get_sentence_embedding_dimension.
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        self._dim = int(dim) if dim else int(self._encode_text_uncached(["the"]).shape[1])

    @classmethod
    def load(cls, target: str, settings: EncoderSettings) -> SentenceTransformerEncoder:
        """Load a model by hub name (cache or download) or from a local directory.

        Raises:
            ModelUnavailable: the directory is missing, or the model is not cached and
                cannot be downloaded.
            EncoderError: the files do not make a model.
        """
        from sentence_transformers import SentenceTransformer

        spec = f"st:{target}"
        plan = plan_device(settings)
        local = looks_like_path(target)
        packaged = None if local else installed_copy(target)
        if packaged is not None:  # a hub name whose weights an installed package carries
            target, local = str(packaged), True
        elif local:
            path = Path(target).expanduser().resolve()
            if not path.is_dir():
                raise ModelUnavailable(f"no sentence-transformers model directory at {path}")
            target = str(path)
            spec = f"st:{path}"
        elif st_location(target, str(settings.cache_dir) if settings.cache_dir else None) is None:
            require_hub(spec)  # at once, rather than after the hub client's retries
        try:
            model = SentenceTransformer(
                target,
                device=str(plan.device),
                cache_folder=str(settings.cache_dir) if settings.cache_dir else None,
                local_files_only=local,
            )
        except OSError as e:
            if local:
                raise ModelInvalid(f"could not load sentence-transformers model {spec}: {e}") from e
            raise ModelUnavailable(offline_hint(spec, e)) from e
        except Exception as e:
            # whatever the library raises for files that are not a model
            raise ModelInvalid(f"could not load sentence-transformers model {spec}: {e}") from e
        return cls(model, name=spec, plan=plan, settings=settings)

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"text"})

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        raise UnsupportedModality(
            f"{self._name} is a text-only model; it cannot embed images. "
            "Use an open_clip model (e.g. tiny-shapes) for image collections."
        )

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens in ``text`` (without special tokens)."""
        # verbose=False: counting a text longer than the window is the point, not a mistake
        # (the tokenizer would print a warning into the logs)
        ids = self._model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)

    @property
    def max_tokens(self) -> int | None:
        """Most tokens of a text the model reads (its window, less [CLS] and [SEP]); None
        when it has none (a static embedding's window is infinite)."""
        window = getattr(self._model, "max_seq_length", None)
        return int(window) - 2 if window and math.isfinite(window) else None

    def _encode_text_uncached(self, texts: Sequence[str]) -> np.ndarray:
        with torch.inference_mode(), self._plan.autocast():
            out = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors = np.asarray(out, dtype=np.float32)
        empty = np.flatnonzero(np.linalg.norm(vectors, axis=1) == 0)
        if empty.size:
            raise InvalidInput(
                f"text {texts[int(empty[0])]!r} embeds to a zero vector: "
                f"{self._name} knows none of its tokens"
            )
        return l2_normalise(vectors)
