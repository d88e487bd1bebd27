"""The bundled tiny-shapes model: its data generator, training script and shipped weights."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_SHAPES_B_DIR", "TINY_SHAPES_DIR", "WEIGHT_FILES", "find_weights"]

TINY_SHAPES_DIR = Path(__file__).resolve().parent / "tiny_shapes"
# the same recipe trained with another seed: a second, different space of the same data
# (what a retrained model is), for migrations between models
TINY_SHAPES_B_DIR = Path(__file__).resolve().parent / "tiny_shapes_b"

# the weight file names of a local open_clip directory, in the order they are looked for
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def find_weights(directory: Path) -> Path | None:
    """The weights file of a local open_clip directory, or ``None``."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return None
