"""open_clip backend: any open_clip architecture from a pretrained tag or a local directory.

A local directory holds ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and one
weights file, ``open_clip_model.safetensors`` preferred (``open_clip_pytorch_model.bin`` is
loaded with ``torch.load(weights_only=True)``). That is the layout open_clip itself pushes to
the Hugging Face hub, and the layout of the bundled ``tiny-shapes`` model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentspace.embedder.base import (
    BaseEncoder,
    batched,
    count_words,
    l2_normalise,
    state_dict_fingerprint,
)
from latentspace.embedder.device import DevicePlan, plan_device
from latentspace.embedder.hub import offline_hint, openclip_cached, require_hub
from latentspace.embedder.models import WEIGHT_FILES, find_weights
from latentspace.errors import EncoderError, InvalidInput, ModelInvalid, ModelUnavailable
from latentspace.settings import EncoderSettings

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["WEIGHT_FILES", "OpenClipEncoder", "find_weights"]

logger = logging.getLogger(__name__)


class OpenClipEncoder(BaseEncoder):
    """A CLIP model from open_clip: text and images into one space."""

    def __init__(
        self,
        model: Any,
        preprocess: Callable[[Image], torch.Tensor],
        tokenizer: Callable[[Sequence[str]], torch.Tensor],
        *,
        name: str,
        fingerprint: str,
        plan: DevicePlan,
        settings: EncoderSettings,
    ) -> None:
        super().__init__(name=name, fingerprint=fingerprint, settings=settings)
        self._model: Any = model.eval().to(plan.device)
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._plan = plan
        with torch.no_grad():
            probe = self._encode_tokens(self._tokenizer(["probe"]))
        self._dim = int(probe.shape[1])

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_local_dir(
        cls, directory: str | Path, settings: EncoderSettings, *, name: str | None = None
    ) -> OpenClipEncoder:
        """Load ``open_clip_config.json`` + weights from ``directory``.

        Raises:
            ModelUnavailable: the directory, its config or its weights are missing.
            EncoderError: the files are there but do not make a model.
        """
        import open_clip

        path = Path(directory).expanduser().resolve()
        config = path / "open_clip_config.json"
        if not path.is_dir() or not config.is_file():
            raise ModelUnavailable(f"no open_clip model directory at {path} (needs {config.name})")
        weights = find_weights(path)
        if weights is None:
            raise ModelUnavailable(f"{path} has no weights file; expected one of {WEIGHT_FILES}")
        try:
            json.loads(config.read_text())
            model, _, preprocess = open_clip.create_model_and_transforms(
                f"local-dir:{path}", weights_only=True
            )
            tokenizer = open_clip.get_tokenizer(f"local-dir:{path}")
        except Exception as e:  # whatever open_clip raises for files that are not a model
            raise ModelInvalid(f"could not load open_clip model from {path}: {e}") from e
        return cls.from_model(model, preprocess, tokenizer, name or f"openclip:{path}", settings)

    @classmethod
    def from_pretrained(
        cls, model_name: str, tag: str, settings: EncoderSettings
    ) -> OpenClipEncoder:
        """Load an open_clip architecture with weights for a pretrained ``tag``.

        Weights come from the local cache or are downloaded on first use.

        Raises:
            InvalidInput: unknown architecture or tag.
            ModelUnavailable: the weights are neither cached nor downloadable.
        """
        import open_clip
        from open_clip.pretrained import download_pretrained, get_pretrained_cfg

        spec = f"openclip:{model_name}/{tag}"
        if model_name not in open_clip.list_models():
            raise InvalidInput(f"unknown open_clip architecture {model_name!r} in {spec!r}")
        cfg: dict[str, Any] = get_pretrained_cfg(model_name, tag)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise InvalidInput(f"unknown pretrained tag {tag!r} for {model_name}; known: {tags}")
        cache_dir = str(settings.cache_dir) if settings.cache_dir else None
        if openclip_cached(cfg, cache_dir) is None:
            require_hub(spec)  # at once, rather than after the hub client's retries
        try:
            checkpoint = download_pretrained(cfg, cache_dir=cache_dir)
        except Exception as e:
            raise ModelUnavailable(offline_hint(spec, e)) from e
        if not checkpoint:
            raise ModelUnavailable(offline_hint(spec, "no download location known"))
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name,
                pretrained=checkpoint,
                force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                image_mean=cfg.get("mean"),
                image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"),
                image_resize_mode=cfg.get("resize_mode"),
                weights_only=True,
            )
            tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
        except Exception as e:
            raise EncoderError(f"could not build {spec}: {e}") from e
        return cls.from_model(model, preprocess, tokenizer, spec, settings)

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        preprocess: Any,
        tokenizer: Any,
        name: str,
        settings: EncoderSettings,
    ) -> OpenClipEncoder:
        """Wrap an already built open_clip model (its fingerprint is its state dict's)."""
        fingerprint = state_dict_fingerprint(model.state_dict())
        return cls(
            model,
            preprocess,
            tokenizer,
            name=name,
            fingerprint=fingerprint,
            plan=plan_device(settings),
            settings=settings,
        )

    # -- the Encoder protocol (name, dim, fingerprint, encode_text: BaseEncoder) --------
    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"text", "image"})

    @property
    def preprocess(self) -> Callable[[Image], torch.Tensor]:
        return self._preprocess

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self._dim), dtype=np.float32)
        parts = [
            self.encode_pixels(torch.stack([self._preprocess(im) for im in chunk]))
            for chunk in batched(images, self._batch_size)
        ]
        return np.concatenate(parts)

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        parts = []
        with torch.inference_mode(), self._plan.autocast():
            for start in range(0, pixels.shape[0], self._batch_size):
                chunk = pixels[start : start + self._batch_size].to(
                    self._plan.device, non_blocking=True
                )
                parts.append(self._model.encode_image(chunk).float().cpu().numpy())
        return l2_normalise(np.concatenate(parts))

    def count_tokens(self, text: str) -> int:
        """BPE tokens in ``text`` (without start/end markers), as the model would see them."""
        encode = getattr(self._tokenizer, "encode", None)  # open_clip's SimpleTokenizer
        if callable(encode):
            return len(encode(text))
        hf = getattr(self._tokenizer, "tokenizer", None)  # open_clip's HFTokenizer
        if hf is not None:
            return len(hf(text, add_special_tokens=False)["input_ids"])
        return count_words(text)

    def _encode_text_uncached(self, texts: Sequence[str]) -> np.ndarray:
        parts = [
            self._encode_tokens(self._tokenizer(list(chunk)))
            for chunk in batched(texts, self._batch_size)
        ]
        return l2_normalise(np.concatenate(parts))

    def _encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), self._plan.autocast():
            out = self._model.encode_text(tokens.to(self._plan.device))
        return np.asarray(out.float().cpu().numpy())
