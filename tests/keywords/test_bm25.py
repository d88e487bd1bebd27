"""The BM25 leg against a BM25 written out from its definition, and its analysis."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fixtures import bm25_reference

from latentspace.errors import InvalidInput
from latentspace.keyword import Analysis, KeywordIndex

# Real sentences (Python's own documentation), so terms repeat as they do in text.
DOCS = {
    10: "The sort() method sorts the list in place, using only < comparisons between items.",
    11: "sorted() returns a new sorted list from the items in iterable.",
    12: "A list comprehension consists of brackets containing an expression followed by a for "
    "clause.",
    13: "Dictionaries are sometimes found in other languages as associative memories.",
    14: "The key argument specifies a function of one argument that is used to extract a "
    "comparison key from each list element.",
    15: "Sorting is guaranteed to be stable: sorts keep the original order of equal elements.",
}


@pytest.mark.parametrize("query", ["sorted list", "sorting key function", "stable sorts order"])
def test_scores_are_bm25_as_lucene_defines_it(query: str) -> None:
    index = KeywordIndex()
    index.upsert(DOCS)
    hits = index.search(query, 10)
    expected = bm25_reference(DOCS, query)
    assert dict(hits.pairs()) == pytest.approx(expected, rel=1e-5)
    assert hits.scores.tolist() == sorted(hits.scores.tolist(), reverse=True)


def test_writes_change_the_ranking_at_once() -> None:
    index = KeywordIndex()
    index.upsert(DOCS)
    assert index.search("dictionaries", 5).ids.tolist() == [13]
    index.remove([13])
    assert index.search("dictionaries", 5).ids.tolist() == []
    index.upsert({11: "Dictionaries map keys to values."})  # re-indexed, not added twice
    assert index.search("dictionaries", 5).ids.tolist() == [11]
    assert len(index) == len(DOCS) - 1
    remaining = {i: t for i, t in DOCS.items() if i != 13} | {
        11: "Dictionaries map keys to values."
    }
    assert dict(index.search("sorted list", 10).pairs()) == pytest.approx(
        bm25_reference(remaining, "sorted list"), rel=1e-5
    )


def test_stemming_and_stop_words_follow_the_analysis() -> None:
    stemmed, plain = KeywordIndex(), KeywordIndex(Analysis(stemmer=None, stopwords=None))
    for index in (stemmed, plain):
        index.upsert(DOCS)
    assert 15 in stemmed.search("sorting", 5).ids.tolist()  # "sorting" ~ "sorts"
    assert plain.search("sorting", 5).ids.tolist() == [15]  # only the literal word
    assert 14 in stemmed.search("extracting", 5).ids.tolist()
    assert plain.search("extracting", 5).ids.tolist() == []
    assert stemmed.search("the", 5).ids.tolist() == []  # a stop word matches nothing
    assert len(plain.search("the", 5).ids) == 4
    own = KeywordIndex(Analysis(stopwords=("list",)))
    own.upsert(DOCS)
    assert own.search("list", 5).ids.tolist() == []
    assert len(own.search("the", 5).ids) == 4  # English stop words are not in that list


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "AND OR NOT", "title:(sort* OR -key)~2^3", "\\", "",
     "   ", "!!!", "NEAR/3 \x00 ;--", "ünïcödé 排序"],
)  # fmt: skip
def test_raw_text_never_fails(query: str) -> None:
    index = KeywordIndex()
    index.upsert(DOCS)
    hits = index.search(query, 5)
    assert len(hits.ids) == len(hits.scores) <= 5


def test_filters_apply_inside_the_leg() -> None:
    index = KeywordIndex()
    index.upsert(DOCS)
    every = index.search("list", 10).ids.tolist()
    assert len(every) == 4
    allowed = index.search("list", 10, allow=np.array([12, 14, 99])).ids.tolist()
    assert allowed == [i for i in every if i in (12, 14)]
    kept = index.search("list", 2, predicate=lambda ids: ids % 2 == 0).ids.tolist()
    assert kept == [i for i in every if i % 2 == 0][:2]


def test_ties_are_broken_by_item_id() -> None:
    index = KeywordIndex()
    index.upsert({5: "same words here", 3: "same words here", 4: "same words here"})
    assert index.search("words", 3).ids.tolist() == [3, 4, 5]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"stemmer": "klingon"}, "stemmer"),
        ({"stopwords": "xx"}, "stopwords"),
        ({"k1": 0}, "k1"),
        ({"b": 2}, r"keyword\.b in"),
        ({"stem": "english"}, "unknown keyword settings"),
    ],
)
def test_bad_analysis_is_refused(doc: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Analysis.from_json(doc)


def test_analysis_round_trips_through_json() -> None:
    analysis = Analysis(stemmer="german", stopwords=("der", "die"), k1=1.5, b=0.5)
    assert Analysis.from_json(analysis.to_json()) == analysis
    assert Analysis.from_json(None) == Analysis()
