"""The sentence-transformers loading path, on a word-level StaticEmbedding model built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentspace.embedder import create_encoder
from latentspace.errors import InvalidInput, ModelUnavailable, UnsupportedModality
from latentspace.settings import EncoderSettings


def test_st_local_dir_loads(static_st_dir: str, encoder_settings: EncoderSettings) -> None:
    encoder = create_encoder(f"st:{static_st_dir}", encoder_settings)
    assert encoder.dim == 128
    assert encoder.modalities == {"text"}
    assert len(encoder.fingerprint) == 64
    again = create_encoder(f"st:{static_st_dir}", encoder_settings)
    assert again.fingerprint == encoder.fingerprint
    out = encoder.encode_text(["the cat", "a blue whale"])
    assert out.shape == (2, 128)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_passage_sharing_the_query_words_ranks_first(
    static_st_dir: str, encoder_settings: EncoderSettings
) -> None:
    encoder = create_encoder(f"st:{static_st_dir}", encoder_settings)
    passages = [
        "the whale and the shark swim in the ocean near the coral reef",
        "a python compiler and a rust kernel on the server",
        "the wolf and the fox live in the forest under the snow",
    ]
    for query, expected in (("ocean whale", 0), ("rust compiler", 1), ("fox in snow", 2)):
        scores = encoder.encode_text(passages) @ encoder.encode_text([query])[0]
        assert int(np.argmax(scores)) == expected, (query, scores)


def test_text_only_encoder_refuses_images(
    static_st_dir: str, encoder_settings: EncoderSettings
) -> None:
    encoder = create_encoder(f"st:{static_st_dir}", encoder_settings)
    with pytest.raises(UnsupportedModality, match="text-only"):
        encoder.encode_images([Image.new("RGB", (8, 8))])


def test_missing_st_dir(tmp_path: Path, encoder_settings: EncoderSettings) -> None:
    with pytest.raises(ModelUnavailable, match="no sentence-transformers model directory"):
        create_encoder(f"st:{tmp_path / 'absent'}", encoder_settings)


def test_st_hub_name_offline_names_the_ways_out(
    tmp_path: Path, encoder_settings: EncoderSettings
) -> None:
    settings = encoder_settings.model_copy(update={"cache_dir": tmp_path / "empty-cache"})
    with pytest.raises(ModelUnavailable, match="tiny-shapes"):
        create_encoder("st:sentence-transformers/all-mpnet-base-v2", settings)


def test_text_of_unknown_words_is_a_clear_error(
    static_st_dir: str, encoder_settings: EncoderSettings
) -> None:
    encoder = create_encoder(f"st:{static_st_dir}", encoder_settings)
    with pytest.raises(InvalidInput, match="knows none of its tokens"):
        encoder.encode_text(["the cat", "zyzzyva quokka"])
