"""Bulk image encoding: parallel decode on worker threads, batched forward passes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentspace.embedder.base import Encoder, ImageEncoder, batched
from latentspace.embedder.images import iter_image_batches, load_image
from latentspace.errors import InvalidInput, UnsupportedModality
from latentspace.settings import EncoderSettings, LimitSettings

__all__ = ["EncodedBatch", "encode_image_files"]


@dataclass
class EncodedBatch:
    """Vectors for the files at ``positions`` (indices into the input), and per-file errors."""

    positions: list[int]
    vectors: np.ndarray
    errors: dict[int, InvalidInput] = field(default_factory=dict)


def encode_image_files(
    encoder: Encoder,
    paths: Sequence[str | Path],
    *,
    settings: EncoderSettings,
    limits: LimitSettings,
) -> Iterator[EncodedBatch]:
    """Encode image files in batches; a bad file is reported, never fatal to the run.

    Encoders with a split image path (:class:`ImageEncoder`) get their files decoded and
    preprocessed on ``settings.decode_workers`` threads while the model runs; others
    decode inline.

    Raises:
        UnsupportedModality: the encoder cannot embed images.
    """
    if "image" not in encoder.modalities:
        raise UnsupportedModality(f"{encoder.name} is text-only; it cannot embed images")
    if isinstance(encoder, ImageEncoder):
        for batch in iter_image_batches(
            paths,
            encoder.preprocess,
            batch_size=settings.batch_size,
            max_pixels=limits.max_image_pixels,
            max_bytes=limits.max_image_bytes,
            workers=settings.decode_workers,
        ):
            vectors = (
                encoder.encode_pixels(batch.pixels)
                if batch.pixels is not None
                else np.zeros((0, encoder.dim), dtype=np.float32)
            )
            yield EncodedBatch(batch.positions, vectors, batch.errors)
        return
    indexed = list(enumerate(paths))
    for chunk in batched(indexed, settings.batch_size):
        images, positions, errors = [], [], {}
        for position, path in chunk:
            try:
                images.append(
                    load_image(
                        path, max_pixels=limits.max_image_pixels, max_bytes=limits.max_image_bytes
                    )
                )
                positions.append(position)
            except InvalidInput as e:
                errors[position] = e
        vectors = encoder.encode_images(images)
        yield EncodedBatch(positions, vectors, errors)
