"""Shared fixtures. No test downloads anything: the hub is switched off before imports."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from collections.abc import Iterator

import pytest

from latentspace.embedder import Encoder, create_encoder
from latentspace.settings import EncoderSettings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def encoder_settings() -> EncoderSettings:
    """CPU settings with inline decoding (tests stay single-process unless they say so)."""
    return EncoderSettings(device="cpu", decode_workers=0, batch_size=64)


@pytest.fixture(scope="session")
def tiny(encoder_settings: EncoderSettings) -> Iterator[Encoder]:
    """The bundled tiny-shapes CLIP, loaded once per session."""
    return create_encoder("tiny-shapes", encoder_settings)


WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "on",
    "for",
    "with",
    "as",
    "at",
    "by",
    "from",
    "this",
    "that",
    "cat",
    "dog",
    "bird",
    "fish",
    "red",
    "blue",
    "green",
    "yellow",
    "house",
    "car",
    "tree",
    "river",
    "mountain",
    "city",
    "music",
    "piano",
    "guitar",
    "violin",
    "drum",
    "space",
    "rocket",
    "planet",
    "star",
    "moon",
    "sun",
    "ocean",
    "whale",
    "shark",
    "coral",
    "reef",
    "forest",
    "wolf",
    "bear",
    "fox",
    "owl",
    "rain",
    "snow",
    "storm",
    "cloud",
    "wind",
    "bread",
    "cheese",
    "apple",
    "banana",
    "coffee",
    "tea",
    "water",
    "fire",
    "stone",
    "iron",
    "gold",
    "silver",
    "book",
    "paper",
    "pen",
    "code",
    "python",
    "rust",
    "compiler",
    "kernel",
    "network",
    "server",
    "database",
    "index",
    "vector",
    "search",
    "query",
    "latent",
    "model",
    "image",
    "text",
    "photo",
]


@pytest.fixture(scope="session")
def static_st_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sentence-transformers StaticEmbedding model built in code and saved to a folder.

    Each word gets a random near-orthogonal vector, so similarities follow word overlap.
    """
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(len(vocab), 128)).astype(np.float32)
    weights[0] = 0.0
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)])
    path = tmp_path_factory.mktemp("st") / "static-words"
    model.save(str(path))
    return str(path)


from tests.fixtures import engine, opened, space  # noqa: E402  (shared by every test folder)
from tests.s3_server import s3_server  # noqa: E402

__all__ = ["engine", "opened", "s3_server", "space"]
