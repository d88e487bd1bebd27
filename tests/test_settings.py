from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from latentspace.settings import Settings


def test_env_prefix_and_nested_sections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTSPACE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LATENTSPACE_ENCODER__BATCH_SIZE", "7")
    monkeypatch.setenv("LATENTSPACE_LIMITS__MAX_IMAGE_PIXELS", "1000")
    settings = Settings()
    assert settings.encoder.batch_size == 7
    assert settings.limits.max_image_pixels == 1000
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path.resolve() / 'latentspace.db'}"


def test_explicit_database_url_wins() -> None:
    url = "postgresql+psycopg://u@localhost/db"
    assert Settings(database_url=url).resolved_database_url() == url


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSPACE_ENCODER__BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        Settings()
