"""The SQL store: tables, repository functions, the metadata filter DSL, engines."""

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
