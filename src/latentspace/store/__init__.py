"""The SQL store: tables, repository functions, the metadata filter DSL, engines.

tables        SQLAlchemy 2 tables: collections, items, vectors, oplog, jobs, adapters, ...
engine        make_engine, make_session_factory: durability settings, statement deadlines,
              collection ids reserved past those that files name
repository    repository functions for collections, items and vectors (caller commits)
bulk          bulk writes of item rows: one prepared statement per table, driver executemany
reads         what searches read: the rows hits show, texts and metadata for the views
lookups       lookups by content hash, document and position (duplicates, listing)
filters       the metadata filter DSL, compiled to SQL with bound parameters only
payload       PayloadIndex: the same DSL evaluated in memory, to the exact set of ids
payload_columns  its compacted part: sorted (value, id) columns per path and JSON kind
payload_recent   its recent part: items written since, in dicts of sets
oplog         the oplog and index manifests: what each collection's index must hold
notify        OplogListener: wakes replicas at once on PostgreSQL (``LISTEN``)
directions    named directions: put, get, list, delete
dedup         the duplicate tiers and the trash (soft deletion, restore)
expiry        which items a read serves now (visible), those past their expiry, the clock
jobs          background jobs, changed only by conditional updates
migrate       model migration in SQL: pending vectors, the swap, fitted adapters
integrity     stored values that no longer read as they should, found and set aside
snapshots     the SQL side of snapshots: live items out page by page, a restore in
snapshot_file the snapshot file: one tar, ``manifest.json`` first; read_snapshot checks all
snapshot_originals  the stored originals a snapshot carries, each named by its sha256
s3            objects in an S3-compatible store (backups): upload, read, list, delete
"""

from __future__ import annotations

from latentspace.store.engine import make_engine, make_session_factory
from latentspace.store.filters import compile_filter, matches, validate_filter
from latentspace.store.repository import ItemInput, UpsertOutcome
from latentspace.store.tables import (
    Base,
    CollectionRow,
    DirectionRow,
    IndexManifestRow,
    ItemRow,
    ItemVectorRow,
    OplogRow,
)

__all__ = [
    "Base",
    "CollectionRow",
    "DirectionRow",
    "IndexManifestRow",
    "ItemInput",
    "ItemRow",
    "ItemVectorRow",
    "OplogRow",
    "UpsertOutcome",
    "compile_filter",
    "make_engine",
    "make_session_factory",
    "matches",
    "validate_filter",
]
