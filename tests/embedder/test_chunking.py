"""The chunker: sizes respected, sentence boundaries preferred, overlap carried, exact slices."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspace.embedder import count_words
from latentspace.embedder.chunking import chunk_text
from latentspace.errors import InvalidInput

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


def _real_text() -> str:
    from pydoc_data.topics import topics  # Python's own documentation, shipped with CPython

    return "\n\n".join(topics[k] for k in sorted(topics)[:12])


@pytest.mark.parametrize(("unit", "size", "overlap"), [("chars", 500, 50), ("tokens", 64, 8)])
def test_every_boundary_carries_the_overlap_to_the_word(unit: str, size: int, overlap: int) -> None:
    text = _real_text()
    measure = len if unit == "chars" else count_words
    chunks = chunk_text(text, size=size, overlap=overlap, unit=unit, count_tokens=count_words)
    assert len(chunks) > 50
    for a, b in itertools.pairwise(chunks):
        assert measure(a.text) <= size
        assert b.start < a.end, (a, b)  # never zero: the overlap falls back to words
        end = a.end + len(text[a.end :]) - len(text[a.end :].lstrip())  # the space a lost
        shared = text[b.start : end]
        # short of the setting by less than the word before it, or one word that is longer
        found = re.search(r"\S+\s*$", text[: b.start])  # the word before, with its space
        before = found.group() if found else ""
        short = overlap - measure(shared)
        assert short < measure(before) or len(shared.split()) == 1, (shared, before)


def test_a_chunk_past_the_model_window_is_cut_again() -> None:
    text = ("x = f(a, b) + g[c] * h{d}; " * 40 + "\n\n") * 3  # symbol-dense: many tokens
    plain = chunk_text(text, size=500, overlap=20)
    assert max(count_words(c.text) for c in plain) > 100
    chunks = chunk_text(text, size=500, overlap=20, count_tokens=count_words, max_tokens=100)
    assert all(count_words(c.text) <= 100 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
