"""Split text into overlapping chunks, preferring sentence boundaries.

The text is cut into words, and sentences end after ``.``, ``!``, ``?`` followed by space
and at blank lines. Words are packed into a chunk while it stays within ``size`` units; a
chunk ends at a sentence end when one lies in its second half, else between words (a word
longer than ``size`` characters is split by characters). The next chunk starts with the
previous chunk's last words that fit in ``overlap``, so context carries across every cut.
Chunks are exact slices of the input (``text[start:end]``), which lets a caller highlight
them in the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from latentspace.errors import InvalidInput

__all__ = ["Chunk", "chunk_text"]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")
_WORD = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class Chunk:
    """One chunk: its text and where it lies in the source."""

    text: str
    start: int
    end: int


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    cost: int
    sentence_end: bool  # a sentence (or paragraph) ends here: the preferred place to cut


def _units(text: str, size: int, measure: Callable[[str], int], by_chars: bool) -> list[_Unit]:
    # Words (with their trailing space), each no larger than ``size``: a longer word is split
    # by characters, or in tokens kept whole and alone (a URL, a hash), cut again later.
    out: list[_Unit] = []
    for s, e in _sentences(text):
        words = [(m.start(), m.end()) for m in _WORD.finditer(text, s, e)] or [(s, e)]
        for k, (ws, we) in enumerate(words):
            ws = s if k == 0 else ws  # a sentence's leading space counts, as it is sliced
            last = k == len(words) - 1
            cost = measure(text[ws:we])
            if cost <= size:
                out.append(_Unit(ws, we, cost, last))
            elif by_chars:
                pieces = range(ws, we, size)
                out.extend(
                    _Unit(p, min(p + size, we), min(size, we - p), last and p + size >= we)
                    for p in pieces
                )
            else:
                out.append(_Unit(ws, we, size, last))
    return out


def chunk_text(
    text: str,
    *,
    size: int,
    overlap: int = 0,
    unit: str = "chars",
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Chunks of at most ``size`` units; neighbours share ``overlap`` units, to the word.

    A chunk ends at a sentence end when one lies in its second half, else at a word; the
    next chunk starts with the previous one's last words that fit in ``overlap`` (so the
    overlap is short of the setting by less than one word), or its last word when that alone
    is longer: never nothing because a sentence or a word was long. With ``max_tokens`` (the
    model's window), a chunk of more tokens is cut again by tokens, so nothing is ever
    truncated by the model unseen.

    Args:
        text: the document.
        size: largest chunk, in ``unit``.
        overlap: units repeated at the start of the next chunk (< ``size``).
        unit: ``"chars"`` or ``"tokens"``.
        count_tokens: how to count tokens (the collection model's tokenizer).
        max_tokens: most tokens the model reads; needs ``count_tokens``.

    Raises:
        InvalidInput: bad size, overlap or unit, or tokens without a counter.
    """
    if size < 1:
        raise InvalidInput(f"chunk size must be at least 1, got {size}")
    if not 0 <= overlap < size:
        raise InvalidInput(f"overlap must be between 0 and size - 1, got {overlap}")
    if unit == "chars":
        measure: Callable[[str], int] = len
    elif unit == "tokens":
        if count_tokens is None:
            raise InvalidInput("chunking by tokens needs a token counter")
        measure = count_tokens
    else:
        raise InvalidInput(f"unknown chunk unit {unit!r}; use chars or tokens")
    chunks = _pack(text, _units(text, size, measure, unit == "chars"), size, overlap)
    if max_tokens is None or count_tokens is None:
        return chunks
    out: list[Chunk] = []
    for chunk in chunks:
        if count_tokens(chunk.text) <= max_tokens:
            out.append(chunk)
            continue
        inner = min(overlap, max_tokens // 4) if unit == "tokens" else max_tokens // 8
        for part in chunk_text(
            chunk.text, size=max_tokens, overlap=inner, unit="tokens", count_tokens=count_tokens
        ):
            begin = chunk.start + part.start
            out.append(Chunk(part.text, begin, begin + len(part.text)))
    return out


def _pack(text: str, units: list[_Unit], size: int, overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    first, previous = 0, -1  # previous: the last unit of the chunk before
    while first < len(units):
        last, total = first, units[first].cost
        while last + 1 < len(units) and total + units[last + 1].cost <= size:
            last += 1
            total += units[last].cost
        if last + 1 < len(units):  # not the end: prefer a sentence end in the second half
            kept = total  # (one the chunk before did not already end at)
            for j in range(last, max(first, previous), -1):
                if units[j].sentence_end and kept * 2 >= size:
                    last = j
                    break
                kept -= units[j].cost
        start, end = units[first].start, units[last].end
        body = text[start:end]
        stripped = body.strip()
        lead = len(body) - len(body.lstrip())
        if stripped and (not chunks or start + lead + len(stripped) > chunks[-1].end):
            # (a chunk of carried words and trailing space alone would add nothing)
            chunks.append(Chunk(stripped, start + lead, start + lead + len(stripped)))
        if last + 1 >= len(units):
            break
        # Step back over the last words that fit in the overlap and leave room for the next
        # new word, so every chunk ends later than the one before.
        nxt, carried, fresh = last + 1, 0, units[last + 1].cost
        while (
            nxt - 1 > first
            and carried + units[nxt - 1].cost <= overlap
            and carried + units[nxt - 1].cost + fresh <= size
        ):
            nxt -= 1
            carried += units[nxt].cost
        if overlap and not carried and last > first and units[last].cost + fresh <= size:
            nxt = last  # the last word alone is over the overlap: carry it, never nothing
        first, previous = nxt, last
    return chunks
