"""Split text into overlapping chunks, preferring sentence boundaries.

The text is cut into sentences (after ``.``, ``!``, ``?`` followed by space, and at blank
lines); sentences are packed into a chunk while it stays within ``size`` units. A sentence
longer than ``size`` is split at word boundaries, and a word longer than ``size`` characters
by characters. The next chunk starts with the previous chunk's last units that fit in
``overlap``, so context carries across the cut. Chunks are exact slices of the input
(``text[start:end]``), which lets a caller highlight them in the source.
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


def _units(
    text: str, size: int, measure: Callable[[str], int], by_chars: bool
) -> list[tuple[int, int, int]]:
    # (start, end, cost) units no larger than ``size``: sentences, else words, else characters.
    out = []
    for s, e in _sentences(text):
        cost = measure(text[s:e])
        if cost <= size:
            out.append((s, e, cost))
            continue
        for word in _WORD.finditer(text, s, e):
            ws, we = word.start(), word.end()
            cost = measure(text[ws:we])
            if cost <= size:
                out.append((ws, we, cost))
            elif by_chars:
                out.extend((p, min(p + size, we), min(size, we - p)) for p in range(ws, we, size))
            else:  # one token-heavy "word" (a URL, a hash): keep it whole but alone
                out.append((ws, we, size))
    return out


def chunk_text(
    text: str,
    *,
    size: int,
    overlap: int = 0,
    unit: str = "chars",
    count_tokens: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Chunks of at most ``size`` units with about ``overlap`` units shared between neighbours.

    Args:
        text: the document.
        size: largest chunk, in ``unit``.
        overlap: units repeated at the start of the next chunk (< ``size``).
        unit: ``"chars"`` or ``"tokens"``.
        count_tokens: how to count tokens (the collection model's tokenizer).

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
    units = _units(text, size, measure, unit == "chars")
    chunks: list[Chunk] = []
    first = 0
    while first < len(units):
        last, total = first, units[first][2]
        while last + 1 < len(units) and total + units[last + 1][2] <= size:
            last += 1
            total += units[last][2]
        start, end = units[first][0], units[last][1]
        body = text[start:end]
        stripped = body.strip()
        if stripped:
            lead = len(body) - len(body.lstrip())
            chunks.append(Chunk(stripped, start + lead, start + lead + len(stripped)))
        if last + 1 >= len(units):
            break
        # Step back over trailing units that fit in the overlap and still leave room for
        # the next new unit, so every chunk ends later than the one before.
        nxt, carried, fresh = last + 1, 0, units[last + 1][2]
        while (
            nxt - 1 > first
            and carried + units[nxt - 1][2] <= overlap
            and carried + units[nxt - 1][2] + fresh <= size
        ):
            nxt -= 1
            carried += units[nxt][2]
        first = nxt
    return chunks
