"""Encoders: text and images into one latent space, built from model spec strings."""

from __future__ import annotations

from latentspace.embedder.base import (
    Encoder,
    ImageEncoder,
    TextCache,
    count_tokens,
    count_words,
    l2_normalise,
    max_tokens,
)
from latentspace.embedder.bulk import EncodedBatch, encode_image_files
from latentspace.embedder.images import ALLOWED_FORMATS, decode_image, load_image
from latentspace.embedder.registry import (
    KNOWN_SPECS,
    EncoderRegistry,
    ModelSpec,
    create_encoder,
    default_registry,
    parse_spec,
)

__all__ = [
    "ALLOWED_FORMATS",
    "KNOWN_SPECS",
    "EncodedBatch",
    "Encoder",
    "EncoderRegistry",
    "ImageEncoder",
    "ModelSpec",
    "TextCache",
    "count_tokens",
    "count_words",
    "create_encoder",
    "decode_image",
    "default_registry",
    "encode_image_files",
    "l2_normalise",
    "load_image",
    "max_tokens",
    "parse_spec",
]
