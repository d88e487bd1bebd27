"""BM25 over items' text, built with ``bm25s`` from token ids kept per item.

Each item's text is analysed once, when it is written (lower-cased, split on word
characters, stop words dropped, stemmed), and its token ids are kept. bm25s precomputes
every (token, document) score, so its matrix depends on the whole corpus (IDF, mean length):
a write marks it stale, and the next search rebuilds it from the kept ids, which costs
no re-analysis. The ranking depends only on the texts, so it is the same whatever database
holds them; ties are broken by item id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenizer

from latentspace.errors import InvalidInput

__all__ = ["STOPWORD_LANGUAGES", "Analysis", "KeywordHits", "KeywordIndex", "stemmers"]

# The stop-word lists bm25s ships, by the codes its tokenizer accepts.
STOPWORD_LANGUAGES = (
    "en", "de", "nl", "fr", "es", "pt", "it", "ru", "sv", "no", "zh", "tr", "ko", "da",
)  # fmt: skip
MAX_STOPWORDS = 10_000
Predicate = Callable[[np.ndarray], np.ndarray]


def stemmers() -> list[str]:
    """The Snowball stemmers PyStemmer offers (``english``, ``german``, ...)."""
    return sorted(Stemmer.algorithms())


@dataclass(frozen=True)
class Analysis:
    """How a collection's text becomes BM25 terms, and BM25's two parameters.

    ``stemmer`` is a Snowball language (``english``; None: no stemming); ``stopwords`` a
    language code of :data:`STOPWORD_LANGUAGES`, a list of words, or None (keep every word).
    ``k1`` and ``b`` default to Lucene's (and so Elasticsearch's) 1.2 and 0.75.
    """

    stemmer: str | None = "english"
    stopwords: str | tuple[str, ...] | None = "en"
    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        if self.stemmer is not None and self.stemmer not in stemmers():
            raise InvalidInput(
                f"keyword.stemmer {self.stemmer!r} is not one of {', '.join(stemmers())}"
            )
        if isinstance(self.stopwords, str) and self.stopwords not in STOPWORD_LANGUAGES:
            raise InvalidInput(
                f"keyword.stopwords {self.stopwords!r} is not a list of words nor one of "
                f"{', '.join(STOPWORD_LANGUAGES)}"
            )
        if isinstance(self.stopwords, tuple) and len(self.stopwords) > MAX_STOPWORDS:
            raise InvalidInput(f"keyword.stopwords has over {MAX_STOPWORDS} words")
        if not (0 < self.k1 <= 10 and 0 <= self.b <= 1):
            raise InvalidInput("keyword.k1 must be in (0, 10] and keyword.b in [0, 1]")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> Analysis:
        """The analysis a collection row stores (None or {}: the defaults).

        Raises:
            InvalidInput: an unknown key, stemmer or stop-word language.
        """
        doc = dict(doc or {})
        unknown = set(doc) - {"stemmer", "stopwords", "k1", "b"}
        if unknown:
            raise InvalidInput(f"unknown keyword settings: {', '.join(sorted(unknown))}")
        stopwords = doc.get("stopwords", "en")
        if isinstance(stopwords, list):
            stopwords = tuple(str(w).lower() for w in stopwords)
        return cls(
            stemmer=doc.get("stemmer", "english"),
            stopwords=stopwords,
            k1=float(doc.get("k1", 1.2)),
            b=float(doc.get("b", 0.75)),
        )

    def to_json(self) -> dict[str, Any]:
        """What the collection row stores and reports."""
        stopwords = list(self.stopwords) if isinstance(self.stopwords, tuple) else self.stopwords
        return {"stemmer": self.stemmer, "stopwords": stopwords, "k1": self.k1, "b": self.b}

    def tokenizer(self) -> Tokenizer:
        """A fresh bm25s tokenizer for this analysis (it grows its vocabulary as it goes)."""
        stem = Stemmer.Stemmer(self.stemmer) if self.stemmer else None
        words = list(self.stopwords) if isinstance(self.stopwords, tuple) else self.stopwords
        return Tokenizer(lower=True, stopwords=words, stemmer=stem)


@dataclass(frozen=True)
class KeywordHits:
    """Item ids and their BM25 scores, best first (only items sharing a term)."""

    ids: np.ndarray
    scores: np.ndarray

    def pairs(self) -> list[tuple[int, float]]:
        """(item id, score) pairs, best first."""
        return list(zip(self.ids.tolist(), self.scores.tolist(), strict=True))


@dataclass
class _Built:
    retriever: bm25s.BM25
    rows: np.ndarray  # item id of each document row


@dataclass
class KeywordIndex:
    """The BM25 index of one collection's texts; safe to share between threads."""

    analysis: Analysis = field(default_factory=Analysis)

    def __post_init__(self) -> None:
        self._tokenizer = self.analysis.tokenizer()
        self._docs: dict[int, list[int]] = {}
        self._built: _Built | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def upsert(self, texts: Mapping[int, str]) -> None:
        """Index (or re-index) items' texts by item id."""
        if not texts:
            return
        ids = list(texts)
        with self._lock:
            tokens = self._tokenizer.tokenize(
                [texts[i] for i in ids], update_vocab=True, show_progress=False, return_as="ids"
            )
            self._docs.update(zip(ids, tokens, strict=True))
            self._built = None

    def remove(self, item_ids: Iterable[int]) -> None:
        """Forget items (unknown ids are ignored)."""
        with self._lock:
            gone = [i for i in item_ids if self._docs.pop(i, None) is not None]
            if gone:
                self._built = None

    def _terms(self, query: str) -> list[int]:
        # The query's known term ids after analysis (words no item has are dropped).
        (ids,) = self._tokenizer.tokenize(
            [query], update_vocab=False, show_progress=False, return_as="ids"
        )
        empty = self._tokenizer.get_vocab_dict().get("")
        return sorted({int(t) for t in ids if t != empty})

    def _index(self) -> _Built:
        if self._built is None:
            rows = np.fromiter(self._docs, dtype=np.int64, count=len(self._docs))
            retriever = bm25s.BM25(k1=self.analysis.k1, b=self.analysis.b)
            vocab = dict(self._tokenizer.get_vocab_dict())
            retriever.index((list(self._docs.values()), vocab), show_progress=False)
            self._built = _Built(retriever, rows)
        return self._built

    def search(
        self,
        query: str,
        k: int,
        *,
        allow: np.ndarray | None = None,
        predicate: Predicate | None = None,
    ) -> KeywordHits:
        """The ``k`` best items for ``query`` that ``allow`` lists (when given) and
        ``predicate`` accepts (when given); items without a query term never match."""
        with self._lock:
            terms = self._terms(query)
            if not terms or not self._docs:
                return KeywordHits(np.empty(0, np.int64), np.empty(0, np.float32))
            built = self._index()
            scores = built.retriever.get_scores_from_ids(terms)
            rows = built.rows
        matched = scores > 0
        if allow is not None:
            matched &= np.isin(rows, allow)
        ids, found = rows[matched], scores[matched]
        order = np.lexsort((ids, -found))
        ids, found = ids[order], found[order]
        if predicate is None:
            return KeywordHits(ids[:k], found[:k])
        return _filtered(ids, found, k, predicate)


def _filtered(ids: np.ndarray, scores: np.ndarray, k: int, predicate: Predicate) -> KeywordHits:
    # A broad filter is checked on the ranked candidates a block at a time until k pass.
    keep: list[np.ndarray] = []
    kept = 0
    block = max(4 * k, 256)
    for start in range(0, ids.shape[0], block):
        mask = predicate(ids[start : start + block])
        keep.append(np.flatnonzero(mask) + start)
        kept += int(mask.sum())
        if kept >= k:
            break
    rows = np.concatenate(keep)[:k] if keep else np.empty(0, np.int64)
    return KeywordHits(ids[rows], scores[rows])
