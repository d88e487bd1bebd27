"""The use-cases the API and the CLI share, one module each, as functions of a context.

    context      Context: settings, sessions, encoders, live indexes (no behaviour)
    lifecycle    start (migrate, open indexes, load encoders) and stop (save)
    collections  create, get, stats, delete, save, rebuild
    items        ingest, write, delete, get, list, patch, stored originals
    intake       the items a caller sends, checked, hashed and embedded (bounded decoding)
    terms        query terms → vectors (the plan stage's first half)
    classify     zero-shot classification: labels (prompt ensembles, directions) → probabilities
    autotag      the background job that writes each item's top label into its metadata
    jobs         background jobs: create, look up, list, cancel (runner: the worker thread)
    search       the search pipeline (plan → retrieve → fuse → rerank → page → hydrate), paths
    fusion       several legs' ranked lists → one (rrf, weighted rrf, relative score)
    keywords     per-collection BM25 indexes, kept current by tailing the oplog
    directions   stored directions
    tiers        the duplicate tiers (identical, same_image, similar) and ingest's verdicts
    duplicates   clusters that do not chain, the check before inserting
    resolve      keep some duplicates, trash the others; the trash and restoring from it
    phashes      per-collection Hamming indexes of images' perceptual hashes
    documents    RAG documents as chunk items
    embeddings   OpenAI-style embeddings by model name
    rerank       documents ordered by relevance (cross-encoders, or embedding models)
    health       readiness
    encoders     one encoder per model spec; texts and images checked, then encoded
    indexes/     the LiveIndexes seam (base) and its in-process implementation (local)

A route (or a CLI command) parses its input, calls one function here and shapes the answer.
"""

from __future__ import annotations

from latentspace.service import (
    autotag,
    classify,
    collections,
    directions,
    documents,
    duplicates,
    embeddings,
    health,
    items,
    jobs,
    lifecycle,
    rerank,
    resolve,
    search,
    tiers,
)
from latentspace.service.chunking import Chunk, chunk_text
from latentspace.service.context import Context, build_context
from latentspace.service.encoders import EncoderFactory, EncoderPool
from latentspace.service.indexes import LiveIndexes, LocalIndexes, OpenReport
from latentspace.service.intake import Duplicate, ItemResult, NewItem
from latentspace.service.runner import JobRunner
from latentspace.service.search import Hit, Query, SearchAnswer
from latentspace.service.terms import QueryTerm
from latentspace.service.tiers import DuplicatePolicy

__all__ = [
    "Chunk",
    "Context",
    "Duplicate",
    "DuplicatePolicy",
    "EncoderFactory",
    "EncoderPool",
    "Hit",
    "ItemResult",
    "JobRunner",
    "LiveIndexes",
    "LocalIndexes",
    "NewItem",
    "OpenReport",
    "Query",
    "QueryTerm",
    "SearchAnswer",
    "autotag",
    "build_context",
    "chunk_text",
    "classify",
    "collections",
    "directions",
    "documents",
    "duplicates",
    "embeddings",
    "health",
    "items",
    "jobs",
    "lifecycle",
    "rerank",
    "resolve",
    "search",
    "tiers",
]
