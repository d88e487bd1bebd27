"""Encoders: text and images into one latent space, built from model spec strings.

base          the Encoder protocol (unit-norm float32 rows) and helpers every backend shares
registry      model specs -> encoders: parse_spec, EncoderRegistry, create_encoder
openclip      open_clip backend: any architecture from a pretrained tag or a local directory
sentence      sentence-transformers backend: text-only encoders for RAG collections
device        plan_device: where and in which precision an encoder runs
availability  which model specs load on this machine without a download (``models``)
installed     models installed as Python packages, loaded offline by their hub names
hub           downloads off or the hub out of reach: said at once, not after retries
images        safe image decoding (decode_image), perceptual hashes, bulk image batches
bulk          encode_image_files: parallel decode on worker threads, batched forward passes
chunking      chunk_text: overlapping chunks of text, preferring sentence boundaries
models/       the bundled tiny-shapes models: data generator, training, weights
"""

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
