"""The bundled tiny-shapes model: its data generator, training script and shipped weights.

shapes             seeded generator of coloured-shape images with captions (the data)
train_tiny_shapes  trains the tiny-shapes CLIP from scratch and writes its folder
evaluate           measure_tiny_shapes: the model card's metrics on held-out draws
tiny_shapes/       the shipped ``tiny-shapes`` weights, config and model card
tiny_shapes_b/     ``tiny-shapes-b``: the same recipe, another seed (for migrations)
"""

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
