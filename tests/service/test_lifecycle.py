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
