"""The bundled tiny-shapes model: its data generator, training script and shipped weights."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_SHAPES_DIR"]

TINY_SHAPES_DIR = Path(__file__).resolve().parent / "tiny_shapes"
