"""The real open_clip loading path, on a small random model saved to a local directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from latentspace.embedder import create_encoder
from latentspace.embedder.base import state_dict_fingerprint
from latentspace.errors import InvalidInput, ModelUnavailable
from latentspace.settings import EncoderSettings

SMALL = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_random_model(
    directory: Path, seed: int, fmt: str = "safetensors"
) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = open_clip.CLIP(**SMALL)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": SMALL, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        save_file(state, str(directory / "open_clip_model.safetensors"))
    else:
        torch.save(state, directory / "open_clip_pytorch_model.bin")
    return state


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_local_dir_loads_with_dim_and_fingerprint(
    tmp_path: Path, encoder_settings: EncoderSettings, fmt: str
) -> None:
    state = save_random_model(tmp_path / "m", seed=1, fmt=fmt)
    encoder = create_encoder(f"openclip:{tmp_path / 'm'}", encoder_settings)
    assert encoder.dim == 32
    assert encoder.fingerprint == state_dict_fingerprint(state)
    assert encoder.name == f"openclip:{(tmp_path / 'm').resolve()}"
    assert encoder.modalities == {"text", "image"}
    texts = encoder.encode_text(["a cat", "a dog", "a cat"])
    images = encoder.encode_images([Image.new("RGB", (50, 40), (200, 10, 10))])
    for out, n in ((texts, 3), (images, 1)):
        assert out.dtype == np.float32
        assert out.shape == (n, 32)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(texts[0], texts[2])


def test_different_weights_have_different_fingerprints(
    tmp_path: Path, encoder_settings: EncoderSettings
) -> None:
    save_random_model(tmp_path / "a", seed=1)
    save_random_model(tmp_path / "b", seed=2)
    a = create_encoder(f"openclip:{tmp_path / 'a'}", encoder_settings)
    b = create_encoder(f"openclip:{tmp_path / 'b'}", encoder_settings)
    assert a.fingerprint != b.fingerprint


def test_local_dir_without_weights_is_refused(
    tmp_path: Path, encoder_settings: EncoderSettings
) -> None:
    save_random_model(tmp_path / "m", seed=1)
    (tmp_path / "m" / "open_clip_model.safetensors").unlink()
    with pytest.raises(ModelUnavailable, match="no weights file"):
        create_encoder(f"openclip:{tmp_path / 'm'}", encoder_settings)


def test_missing_local_dir_is_refused(tmp_path: Path, encoder_settings: EncoderSettings) -> None:
    with pytest.raises(ModelUnavailable, match="no open_clip model directory"):
        create_encoder(f"openclip:{tmp_path / 'absent'}", encoder_settings)


def test_pretrained_spec_offline_names_the_ways_out(
    tmp_path: Path, encoder_settings: EncoderSettings
) -> None:
    settings = encoder_settings.model_copy(update={"cache_dir": tmp_path / "empty-cache"})
    with pytest.raises(ModelUnavailable) as caught:
        create_encoder("openclip:ViT-B-32/laion2b_s34b_b79k", settings)
    message = str(caught.value)
    assert "openclip:/path/to/dir" in message
    assert "tiny-shapes" in message
    assert "ViT-B-32/laion2b_s34b_b79k" in message


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("openclip:ViT-B-32", "needs ARCH/TAG"),
        ("openclip:No-Such-Arch/x", "unknown open_clip architecture"),
        ("openclip:ViT-B-32/no_such_tag", "unknown pretrained tag"),
    ],
)
def test_bad_openclip_specs(spec: str, match: str, encoder_settings: EncoderSettings) -> None:
    with pytest.raises(InvalidInput, match=match):
        create_encoder(spec, encoder_settings)
