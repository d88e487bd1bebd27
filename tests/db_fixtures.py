"""Database fixtures: SQLite always, PostgreSQL when LATENTSPACE_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from latentspace.store.engine import make_engine

POSTGRES_URL = os.environ.get("LATENTSPACE_TEST_POSTGRES_URL", "")


def _postgres_engine() -> Iterator[Engine]:
    if not POSTGRES_URL:
        pytest.skip("set LATENTSPACE_TEST_POSTGRES_URL to run against PostgreSQL")
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"ls_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        yield engine
        engine.dispose()
    else:
        yield from _postgres_engine()
