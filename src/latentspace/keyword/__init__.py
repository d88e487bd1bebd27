"""The keyword leg: BM25 over items' text (bm25s), with per-collection analysis."""

from latentspace.keyword.bm25 import Analysis, KeywordHits, KeywordIndex

__all__ = ["Analysis", "KeywordHits", "KeywordIndex"]
