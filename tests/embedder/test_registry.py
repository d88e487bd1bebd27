from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL.Image import Image

from latentspace.embedder import EncoderRegistry, ModelSpec, create_encoder, parse_spec
from latentspace.embedder.base import Encoder
from latentspace.errors import InvalidInput
from latentspace.settings import EncoderSettings


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("tiny-shapes", ModelSpec("tiny-shapes", "")),
        (
            "openclip:ViT-B-32/laion2b_s34b_b79k",
            ModelSpec("openclip", "ViT-B-32/laion2b_s34b_b79k"),
        ),
        ("openclip:/models/clip", ModelSpec("openclip", "/models/clip")),
        (
            "st:sentence-transformers/all-MiniLM-L6-v2",
            ModelSpec("st", "sentence-transformers/all-MiniLM-L6-v2"),
        ),
        (" st:./m ", ModelSpec("st", "./m")),
    ],
)
def test_parse_spec(spec: str, parsed: ModelSpec) -> None:
    assert parse_spec(spec) == parsed
    assert str(parsed) == spec.strip()


@pytest.mark.parametrize(("spec", "match"), [("", "empty model spec"), ("st:", "nothing after")])
def test_parse_spec_refuses_malformed(spec: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_spec(spec)


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown model scheme 'clip'.*openclip"):
        create_encoder("clip:ViT-B-32")


def test_tiny_shapes_takes_no_argument() -> None:
    with pytest.raises(InvalidInput, match="takes no argument"):
        create_encoder("tiny-shapes:big")


class ConstantEncoder:
    name, dim, fingerprint = "const", 2, "0" * 64
    modalities = frozenset({"text"})

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))

    def encode_images(self, images: Sequence[Image]) -> np.ndarray:
        raise NotImplementedError


def test_register_adds_a_scheme_to_one_registry_only() -> None:
    registry = EncoderRegistry()
    seen: list[str] = []

    def build(target: str, settings: EncoderSettings) -> Encoder:
        seen.append(target)
        return ConstantEncoder()

    registry.register("const", build)
    encoder = registry.create("const:anything")
    assert isinstance(encoder, Encoder)
    assert seen == ["anything"]
    assert registry.schemes == ["const"]
    with pytest.raises(InvalidInput):
        create_encoder("const:anything")  # the default registry is untouched


def test_tiny_shapes_is_an_image_encoder(tiny: Encoder) -> None:
    from latentspace.embedder import ImageEncoder

    assert tiny.name == "tiny-shapes"
    assert isinstance(tiny, ImageEncoder)
    assert tiny.modalities == {"text", "image"}
    assert tiny.dim == 64
    assert len(tiny.fingerprint) == 64


def test_the_known_open_clip_hubs_are_open_clips_own() -> None:
    from open_clip.pretrained import get_pretrained_cfg

    from latentspace.embedder.registry import KNOWN_OPENCLIP_HUBS, KNOWN_SPECS

    known = [s.removeprefix("openclip:") for s in KNOWN_SPECS if s.startswith("openclip:")]
    assert sorted(known) == sorted(KNOWN_OPENCLIP_HUBS)
    for target, hub in KNOWN_OPENCLIP_HUBS.items():
        arch, _, tag = target.partition("/")
        assert get_pretrained_cfg(arch, tag)["hf_hub"] == hub, target
