"""The use-cases the API and the CLI share, one module each, as functions of a context.

    context      Context: settings, sessions, the live state, the job runner (no behaviour)
    lifecycle    start (migrate, open indexes, load encoders) and stop (save)
    integrity    damage in stored data, found, set aside and named in /readyz
    replica      the thread that applies other processes' writes; read-your-writes
    collections  create, get, stats, delete, save, rebuild
    tuning       quantization, rescoring and the recall target: checked, changed, rebuilt
    items        ingest, write, delete, get, list, patch, stored originals
    bulk         items by the many: read, delete, page and count by ids or by a filter
    intake       the items a caller sends, checked, hashed and embedded (bounded decoding)
    encoders     caller input → vectors: images decoded under the limits, texts checked
    terms        query terms → vectors (the plan stage's first half)
    queries      the frozen values the search stages pass on
    search       the search pipeline (plan → retrieve → fuse → rerank → diversify → page →
                 hydrate)
    diversity    the stages that trade relevance for variety: MMR, grouping by a field
    matching     the items a filter lets through (checked, then the payload index)
    paths        walks from one term to another (slerp, the nearest unused item a step)
    rerank       documents ordered by relevance (cross-encoders, or embedding models)
    directions   stored directions
    adapters     adapters between two models' spaces, stored with a collection
    classify     zero-shot classification: labels (prompt ensembles, directions) → probabilities
    autotag      the background job that writes each item's top label into its metadata
    jobs         background jobs: create, look up, list, cancel (``latentspace.runner`` runs them)
    tiers        the duplicate tiers (identical, same_image, similar) and ingest's verdicts
    duplicates   clusters that do not chain, the check before inserting
    resolve      keep some duplicates, trash the others; the trash and restoring from it
    documents    RAG documents as chunk items
    embeddings   OpenAI-style embeddings by model name
    maps         the map job (projection + clusters) and the map as of now
    snapshots    a collection into one file and back
    backups      snapshots to and from S3-compatible storage; the backup schedule and its job
    expiry       items that expire (expires_at, a collection's ttl_seconds) and the sweep
    periodic     Periodic: a thread that does one thing every few seconds until stopped
    migrate      model migration: re-encode, or serve through a fitted adapter
    health       readiness
    qdrant_collections  Qdrant's collections and snapshots API over collections
    qdrant_points       Qdrant's points API: point ids, payloads, upsert, retrieve, delete,
                        payload updates, scroll, count
    qdrant_search       Qdrant's query API (query, batch, groups; the older search)
    qdrant_filters      Qdrant's filter language translated to the metadata filter DSL

What a process keeps per collection lives in ``latentspace.live``, reached as ``ctx.live``.
A route (or a CLI command) parses its input, calls one function here and shapes the answer.
"""

from __future__ import annotations

from latentspace.service import (
    adapters,
    autotag,
    backups,
    bulk,
    classify,
    collections,
    directions,
    diversity,
    documents,
    duplicates,
    embeddings,
    encoders,
    health,
    intake,
    items,
    jobs,
    lifecycle,
    maps,
    matching,
    migrate,
    paths,
    queries,
    replica,
    rerank,
    resolve,
    search,
    snapshots,
    terms,
    tiers,
)
from latentspace.service.context import Context, build_context
from latentspace.service.intake import Duplicate, ItemResult, NewItem
from latentspace.service.search import Hit, Query, SearchAnswer
from latentspace.service.terms import QueryTerm
from latentspace.service.tiers import DuplicatePolicy

__all__ = [
    "Context",
    "Duplicate",
    "DuplicatePolicy",
    "Hit",
    "ItemResult",
    "NewItem",
    "Query",
    "QueryTerm",
    "SearchAnswer",
    "adapters",
    "autotag",
    "backups",
    "build_context",
    "bulk",
    "classify",
    "collections",
    "directions",
    "diversity",
    "documents",
    "duplicates",
    "embeddings",
    "encoders",
    "health",
    "intake",
    "items",
    "jobs",
    "lifecycle",
    "maps",
    "matching",
    "migrate",
    "paths",
    "queries",
    "replica",
    "rerank",
    "resolve",
    "search",
    "snapshots",
    "terms",
    "tiers",
]
