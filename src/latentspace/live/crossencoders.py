"""Cross-encoders for reranking: loaded once per spec from a local folder, then shared.

A spec is ``cross:/path/to/folder`` (a sentence-transformers ``CrossEncoder`` saved with
``save_pretrained``). Only the specs named in ``LATENTSPACE_RERANK_MODELS`` are loaded: a
client never makes the server read a folder it chose.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latentspace.errors import ModelInvalid, ModelUnavailable

__all__ = ["CrossEncoderPool", "CrossScorer"]

PREFIX = "cross:"


class CrossScorer:
    """One cross-encoder: scores (query, document) pairs in [0, 1], and counts tokens."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """A relevance in [0, 1] per document (the model's sigmoid of one logit)."""
        import torch

        pairs = [(query, d) for d in documents]
        with torch.inference_mode():
            out = self._model.predict(
                pairs, activation_fn=torch.nn.Sigmoid(), show_progress_bar=False
            )
        scores = np.asarray(out, dtype=np.float64).reshape(len(documents), -1)
        if scores.shape[1] != 1:
            raise ModelInvalid(
                f"a reranker needs a cross-encoder with one output, this one has {scores.shape[1]}"
            )
        return np.clip(scores[:, 0], 0.0, 1.0)

    def count_tokens(self, query: str, documents: Sequence[str]) -> int:
        """Tokens the model read: each pair, special tokens included."""
        tokenizer = self._model.tokenizer
        return sum(len(tokenizer(query, d, verbose=False)["input_ids"]) for d in documents)


class CrossEncoderPool:
    """The configured cross-encoders, each loaded on first use (thread-safe)."""

    def __init__(self, specs: Sequence[str], device: str | None = None) -> None:
        self.specs = [s for s in specs if s.startswith(PREFIX)]
        self._device = device
        self._loaded: dict[str, CrossScorer] = {}
        self._lock = threading.Lock()

    def get(self, spec: str) -> CrossScorer:
        """The scorer of ``spec`` (one of :attr:`specs`).

        Raises:
            ModelUnavailable: the folder holds no model.
            ModelInvalid: the folder's model does not load as a cross-encoder.
        """
        with self._lock:
            if spec not in self._loaded:
                self._loaded[spec] = self._load(spec)
            return self._loaded[spec]

    def _load(self, spec: str) -> CrossScorer:
        folder = Path(spec.removeprefix(PREFIX)).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"no cross-encoder at {folder} (it has no config.json)")
        from sentence_transformers import CrossEncoder

        try:
            model = CrossEncoder(str(folder), device=self._device, local_files_only=True)
        except Exception as e:  # the library raises many kinds for a bad folder
            raise ModelInvalid(f"could not load cross-encoder {spec}: {e}") from e
        return CrossScorer(model)
