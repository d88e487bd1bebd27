"""The shipped tiny-shapes model: held-out metrics re-measured, training smoke-tested."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from latentspace.embedder import Encoder, create_encoder
from latentspace.embedder.models import TINY_SHAPES_DIR
from latentspace.embedder.models.evaluate import measure_tiny_shapes
from latentspace.embedder.models.shapes import COLOURS, SHAPES, generate
from latentspace.embedder.models.train_tiny_shapes import TrainConfig, train, write_model_dir
from latentspace.settings import EncoderSettings


@pytest.fixture(scope="module")
def metrics(tiny: Encoder) -> object:
    return measure_tiny_shapes(tiny)


def test_shipped_files() -> None:
    weights = TINY_SHAPES_DIR / "open_clip_model.safetensors"
    assert weights.is_file()
    assert weights.stat().st_size < 20 * 1024 * 1024
    assert (TINY_SHAPES_DIR / "open_clip_config.json").is_file()
    assert (TINY_SHAPES_DIR / "MODEL_CARD.md").is_file()


def test_generator_is_seeded_and_balanced() -> None:
    a, b = generate(64, seed=3), generate(64, seed=3)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert np.array_equal(np.asarray(a[5].image), np.asarray(b[5].image))
    assert len(COLOURS) >= 8
    assert len(SHAPES) >= 4
    pairs = {(s.colour, s.shape) for s in a}
    assert len(pairs) == len(COLOURS) * len(SHAPES)
    for sample in a:
        assert sample.colour in sample.caption
        assert sample.shape in sample.caption


def test_text_to_image_precision_at_5(metrics: object) -> None:
    assert metrics.precision_at_5 >= 0.95  # type: ignore[attr-defined]


def test_latent_arithmetic_changes_the_colour(metrics: object) -> None:
    assert metrics.arithmetic_accuracy >= 0.90  # type: ignore[attr-defined]


def test_model_card_states_the_measured_metrics(metrics: object) -> None:
    card = (TINY_SHAPES_DIR / "MODEL_CARD.md").read_text()
    stated = [float(x) for x in re.findall(r"\| (\d\.\d{3}) \|", card)]
    assert stated == pytest.approx(
        [metrics.precision_at_5, metrics.arithmetic_accuracy],  # type: ignore[attr-defined]
        abs=0.01,
    )


def test_a_colour_word_finds_that_colour(tiny: Encoder) -> None:
    samples = generate(64, seed=99)
    images = tiny.encode_images([s.image for s in samples])
    for colour in ("red", "blue", "yellow"):
        top = np.argsort(-(images @ tiny.encode_text([f"a {colour} shape"])[0]))[:4]
        assert [samples[i].colour for i in top] == [colour] * 4


def test_training_smoke(tmp_path: Path) -> None:
    config = TrainConfig(steps=3, batch_size=16, train_images=64, warmup=1, threads=1)
    model = train(config)
    write_model_dir(model, tmp_path / "m")
    encoder = create_encoder(f"openclip:{tmp_path / 'm'}", EncoderSettings(device="cpu"))
    out = encoder.encode_text(["a red circle"])
    assert out.shape == (1, 64)
    assert np.isfinite(out).all()
