"""The chunker: sizes respected, sentence boundaries preferred, overlap carried, exact slices."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspace.embedder import count_words
from latentspace.errors import InvalidInput
from latentspace.service.chunking import chunk_text

TEXT = (
    "The red square sat still. A blue circle rolled past it! Did the green triangle see? "
    "Nobody knows.\n\nA new paragraph starts here. It has two sentences."
)


def test_chunks_are_exact_slices_within_size() -> None:
    chunks = chunk_text(TEXT, size=60, overlap=0)
    assert len(chunks) > 1
    for c in chunks:
        assert len(c.text) <= 60
        assert TEXT[c.start : c.end] == c.text


def test_sentence_boundaries_are_preferred() -> None:
    chunks = chunk_text(TEXT, size=60, overlap=0)
    # Every chunk ends at the end of a sentence when sentences fit.
    assert all(c.text[-1] in ".!?" for c in chunks)
    assert chunks[0].text == "The red square sat still. A blue circle rolled past it!"


def test_overlap_repeats_the_previous_sentence() -> None:
    chunks = chunk_text(TEXT, size=60, overlap=30)
    assert chunks[1].text.startswith("A blue circle rolled past it!")
    assert chunks[1].start < chunks[0].end


def test_long_sentence_is_split_by_words_and_long_word_by_chars() -> None:
    text = "word " * 50 + "x" * 45
    chunks = chunk_text(text, size=20, overlap=0)
    assert all(len(c.text) <= 20 for c in chunks)
    assert all(not c.text.startswith("ord") for c in chunks)  # words are not cut
    assert "".join(c.text for c in chunks if set(c.text) == {"x"}) == "x" * 45


def test_tokens_use_the_given_counter() -> None:
    chunks = chunk_text(TEXT, size=12, overlap=0, unit="tokens", count_tokens=count_words)
    assert all(count_words(c.text) <= 12 for c in chunks)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "at least 1"),
        ({"size": 10, "overlap": 10}, "overlap"),
        ({"size": 10, "unit": "pages"}, "unknown chunk unit"),
        ({"size": 10, "unit": "tokens"}, "token counter"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        chunk_text(TEXT, **kwargs)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab .!?\n"), max_size=300),
    size=st.integers(1, 40),
    overlap=st.integers(0, 39),
)
def test_any_text_is_covered_in_order(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    chunks = chunk_text(text, size=size, overlap=overlap)
    for c in chunks:
        assert 0 < len(c.text) <= size
        assert text[c.start : c.end] == c.text
    # Chunks advance (each ends later, none starts earlier), and cover every non-space.
    pairs = list(itertools.pairwise(chunks))
    assert all(a.end < b.end and a.start <= b.start for a, b in pairs)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
