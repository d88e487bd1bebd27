"""Model specs → encoders.

A spec string names a model for the life of a collection:

- ``tiny-shapes`` — the CLIP trained here and shipped inside the package; ``tiny-shapes-b``
  the same recipe trained with another seed (a second space, for model migrations);
- ``openclip:ARCH/TAG`` — any open_clip architecture with a pretrained tag
  (``openclip:ViT-B-32/laion2b_s34b_b79k``), weights from the cache or downloaded once;
- ``openclip:/path/to/dir`` — a local open_clip directory (config + safetensors);
- ``st:NAME`` or ``st:/path/to/dir`` — a sentence-transformers model (text only).

Builders live in an :class:`EncoderRegistry`, a dict of scheme → builder; add a backend with
:meth:`EncoderRegistry.register`. :func:`default_registry` returns a fresh registry with the
built-in schemes, so nothing here is global mutable state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from latentspace.embedder.base import Encoder, looks_like_path
from latentspace.errors import InvalidInput
from latentspace.settings import EncoderSettings

__all__ = [
    "KNOWN_OPENCLIP_HUBS",
    "KNOWN_SPECS",
    "Builder",
    "EncoderRegistry",
    "ModelSpec",
    "canonical_spec",
    "create_encoder",
    "default_registry",
    "parse_spec",
]

Builder = Callable[[str, EncoderSettings], Encoder]

# Well-known specs the `models` command lists besides tiny-shapes.
KNOWN_SPECS: tuple[str, ...] = (
    "openclip:ViT-B-32/laion2b_s34b_b79k",
    "openclip:ViT-B-16/laion2b_s34b_b88k",
    "openclip:ViT-L-14/laion2b_s32b_b82k",
    "openclip:ViT-B-32/openai",
    "st:sentence-transformers/all-MiniLM-L6-v2",
    "st:sentence-transformers/all-mpnet-base-v2",
)

# open_clip's Hugging Face repository of each well-known open_clip spec, so `models` can look
# in the cache without importing open_clip and torch (tests check them against open_clip)
KNOWN_OPENCLIP_HUBS: dict[str, str] = {
    "ViT-B-32/laion2b_s34b_b79k": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/",
    "ViT-B-16/laion2b_s34b_b88k": "laion/CLIP-ViT-B-16-laion2B-s34B-b88K/",
    "ViT-L-14/laion2b_s32b_b82k": "laion/CLIP-ViT-L-14-laion2B-s32B-b82K/",
    "ViT-B-32/openai": "timm/vit_base_patch32_clip_224.openai/",
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: the scheme picks the builder, the target is the builder's argument."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}" if self.target else self.scheme


def parse_spec(spec: str) -> ModelSpec:
    """Split ``scheme:target``; a spec without a colon is a bare scheme (``tiny-shapes``).

    Raises:
        InvalidInput: empty spec or empty target after a colon.
    """
    spec = spec.strip()
    if not spec:
        raise InvalidInput("empty model spec; try `tiny-shapes` or `openclip:ARCH/TAG`")
    scheme, sep, target = spec.partition(":")
    if sep and not target:
        raise InvalidInput(f"model spec {spec!r} has nothing after {scheme!r}:")
    return ModelSpec(scheme, target)


def canonical_spec(spec: str) -> str:
    """``spec`` as a collection stores it: a local path made absolute (``st:./m`` →
    ``st:/abs/m``), so the collection still loads from any working directory.

    Raises:
        InvalidInput: empty spec or empty target after a colon.
    """
    parsed = parse_spec(spec)
    if parsed.scheme in ("openclip", "st") and looks_like_path(parsed.target):
        return f"{parsed.scheme}:{Path(parsed.target).expanduser().resolve()}"
    return str(parsed)


class EncoderRegistry:
    """Scheme → builder. Builders take the spec's target and the encoder settings."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder] = {}

    def register(self, scheme: str, builder: Builder) -> None:
        """Add (or replace) the builder for ``scheme``."""
        self._builders[scheme] = builder

    @property
    def schemes(self) -> list[str]:
        """Registered scheme names, sorted."""
        return sorted(self._builders)

    def create(self, spec: str, settings: EncoderSettings | None = None) -> Encoder:
        """Build the encoder a spec names.

        Raises:
            InvalidInput: unknown scheme or malformed spec.
            ModelUnavailable: the weights are not on this machine and cannot be fetched.
            EncoderError: the model could not be built.
        """
        parsed = parse_spec(spec)
        builder = self._builders.get(parsed.scheme)
        if builder is None:
            raise InvalidInput(
                f"unknown model scheme {parsed.scheme!r} in {spec!r}; known: {self.schemes}"
            )
        return builder(parsed.target, settings or EncoderSettings())


def _bundled(scheme: str) -> Builder:
    # A builder of one of the CLIPs shipped in the package: tiny-shapes, and tiny-shapes-b
    # (the same recipe trained with another seed: a second space of the same data).
    def build(target: str, settings: EncoderSettings) -> Encoder:
        from latentspace.embedder.models import TINY_SHAPES_B_DIR, TINY_SHAPES_DIR
        from latentspace.embedder.openclip import OpenClipEncoder

        if target:
            raise InvalidInput(f"{scheme} takes no argument, got {target!r}")
        directory = TINY_SHAPES_B_DIR if scheme == "tiny-shapes-b" else TINY_SHAPES_DIR
        return OpenClipEncoder.from_local_dir(directory, settings, name=scheme)

    return build


def _build_openclip(target: str, settings: EncoderSettings) -> Encoder:
    from latentspace.embedder.openclip import OpenClipEncoder

    if looks_like_path(target):
        return OpenClipEncoder.from_local_dir(target, settings)
    arch, sep, tag = target.partition("/")
    if not sep or not tag:
        raise InvalidInput(
            f"open_clip spec 'openclip:{target}' needs ARCH/TAG "
            "(e.g. openclip:ViT-B-32/laion2b_s34b_b79k) or a local directory path"
        )
    return OpenClipEncoder.from_pretrained(arch, tag, settings)


def _build_sentence(target: str, settings: EncoderSettings) -> Encoder:
    from latentspace.embedder.sentence import SentenceTransformerEncoder

    return SentenceTransformerEncoder.load(target, settings)


def default_registry() -> EncoderRegistry:
    """A new registry holding the built-in schemes ``tiny-shapes``, ``openclip`` and ``st``."""
    registry = EncoderRegistry()
    for scheme in ("tiny-shapes", "tiny-shapes-b"):
        registry.register(scheme, _bundled(scheme))
    registry.register("openclip", _build_openclip)
    registry.register("st", _build_sentence)
    return registry


def create_encoder(
    spec: str,
    settings: EncoderSettings | None = None,
    *,
    registry: EncoderRegistry | None = None,
) -> Encoder:
    """Build the encoder for ``spec`` with the default (or the given) registry."""
    return (registry or default_registry()).create(spec, settings)
