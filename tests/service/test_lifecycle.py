"""Start-up checks the schema: it migrates only when told to."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentspace.service import lifecycle
from latentspace.settings import Settings


def test_schema_check_without_auto_migrate(tmp_path: Path) -> None:
    from latentspace.errors import StoreError

    settings = Settings(data_dir=tmp_path, auto_migrate=False)
    with pytest.raises(StoreError, match="latentspace db upgrade"):
        lifecycle.start(settings)
    lifecycle.stop(lifecycle.start(settings.model_copy(update={"auto_migrate": True})))
    lifecycle.stop(lifecycle.start(settings))  # now at head: opens without migrating


def test_start_up_does_not_wait_for_the_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restart is ready before its hit cache is filled: the warming thread is held here,
    # and searches meanwhile read what they lack from SQL.
    import threading

    import numpy as np

    from latentspace.live.hits import HitCache
    from latentspace.service import collections, items
    from latentspace.service.search import search_vector

    settings = Settings(data_dir=tmp_path)
    first = lifecycle.start(settings)
    collections.create(first, "c", dim=4)
    items.ingest_vectors(first, "c", np.eye(4, dtype=np.float32), ids=list("abcd"))
    lifecycle.stop(first)
    release = threading.Event()
    warm = HitCache.warm

    def held(self: HitCache, collection: object) -> int:
        release.wait(30)
        return warm(self, collection)  # type: ignore[arg-type]

    monkeypatch.setattr(HitCache, "warm", held)
    ctx = lifecycle.start(settings, warm=True)
    try:
        assert ctx.warmer is not None
        assert not ctx.warmer.wait(0.1)  # still warming, and yet started
        assert search_vector(ctx, "c", np.eye(4, dtype=np.float32)[2], k=1)[0].id == "c"
        release.set()
        assert ctx.warmer.wait(30)
        assert ctx.live.hits.used_bytes > 0
    finally:
        release.set()
        lifecycle.stop(ctx)
