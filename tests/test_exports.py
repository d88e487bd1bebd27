"""Every package's ``__all__`` is sorted and names things that exist (httpx-style)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "latentspace",
    "latentspace.errors",
    "latentspace.settings",
    "latentspace.embedder",
    "latentspace.embedder.base",
    "latentspace.embedder.images",
    "latentspace.embedder.registry",
    "latentspace.embedder.models",
    "latentspace.index",
    "latentspace.vectors",
    "latentspace.store",
    "latentspace.store.filters",
    "latentspace.store.repository",
    "latentspace.migrations",
    "latentspace.types",
    "latentspace.limits",
    "latentspace.atomic",
    "latentspace.service",
    "latentspace.service.context",
    "latentspace.service.lifecycle",
    "latentspace.live.indexes",
    "latentspace.service.collections",
    "latentspace.service.items",
    "latentspace.service.intake",
    "latentspace.service.search",
    "latentspace.service.terms",
    "latentspace.service.directions",
    "latentspace.service.duplicates",
    "latentspace.service.documents",
    "latentspace.service.embeddings",
    "latentspace.service.health",
    "latentspace.service.classify",
    "latentspace.service.autotag",
    "latentspace.service.jobs",
    "latentspace.runner",
    "latentspace.store.jobs",
    "latentspace.store.oplog",
    "latentspace.store.lookups",
    "latentspace.index.persist",
    "latentspace.store.directions",
    "latentspace.index.batcher",
    "latentspace.api",
    "latentspace.api.schemas",
    "latentspace.api.errors",
    "latentspace.api.deps",
    "latentspace.client",
    "latentspace.cli",
    "latentspace.cli.data",
    "latentspace.cli.server",
    "latentspace.api.convert",
    "latentspace.api.openapi",
    "latentspace.logs",
    "latentspace.web",
]


@pytest.mark.parametrize("name", MODULES)
def test_exported_members(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported, key=lambda s: (not s.isupper(), s.startswith("_"), s))
    for member in exported:
        assert hasattr(module, member), f"{name}.{member}"
