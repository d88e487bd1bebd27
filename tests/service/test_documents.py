"""RAG documents as chunk items: a request's chunks are embedded and written together, each
document answers for its own chunks, and a shorter repost removes the chunks past its end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from latentspace.embedder import Encoder
from latentspace.service import Context, collections, documents
from latentspace.service.documents import NewDocument

SENTENCE = "The server keeps every vector in the index and the text in the database."


def test_a_request_of_many_documents_is_one_encode(
    space: Context, static_st_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    collections.create(space, "docs", model=f"st:{static_st_dir}")
    calls: list[int] = []
    encode = space.live.encoders.encode_text

    def counted(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return encode(encoder, texts)

    monkeypatch.setattr(space.live.encoders, "encode_text", counted)
    docs = [NewDocument(f"d{i}", f"{SENTENCE} Document {i}.", {"n": i}) for i in range(30)]
    docs.append(NewDocument("empty", "   "))
    results = documents.ingest_documents(space, "docs", docs, size=400, overlap=50)
    assert calls == [30]  # one batch: every document's chunk, one forward pass
    assert [r.created for r in results[:30]] == [1] * 30
    assert results[30].error is not None
    assert "no text" in str(results[30].error)
    assert collections.stats(space, "docs").count == 30


def test_a_shorter_repost_removes_only_its_own_stale_chunks(
    space: Context, static_st_dir: str
) -> None:
    collections.create(space, "docs", model=f"st:{static_st_dir}")
    long_text = " ".join([SENTENCE] * 12)
    first = documents.ingest_documents(
        space,
        "docs",
        [NewDocument("a", long_text), NewDocument("b", long_text)],
        size=200,
        overlap=0,
    )
    assert first[0].chunks == first[1].chunks > 2
    again = documents.ingest_documents(
        space,
        "docs",
        [NewDocument("a", SENTENCE), NewDocument("b", long_text)],
        size=200,
        overlap=0,
    )
    assert again[0].removed == first[0].chunks - 1
    assert again[0].updated + again[0].unchanged + again[0].created == 1
    assert again[1].removed == 0
    assert again[1].unchanged == first[1].chunks
    assert collections.stats(space, "docs").count == 1 + first[1].chunks
