"""The keyword leg: BM25 over items' text (bm25s), with per-collection analysis.

bm25         KeywordIndex: BM25 from token ids kept per item; Analysis, KeywordHits
"""

from latentspace.keyword.bm25 import Analysis, KeywordHits, KeywordIndex

__all__ = ["Analysis", "KeywordHits", "KeywordIndex"]
