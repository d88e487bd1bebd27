"""Alembic migrations shipped inside the package, so an installed service upgrades itself.

    env          Alembic's environment: runs migrations on the engine passed in, or on the URL
    versions/    one revision per file, applied in order by Alembic

``upgrade``, ``downgrade``, ``head_revision`` and ``current_revision`` drive them from here,
without an alembic.ini.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` with this package's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _with_engine(config: Config, engine: Engine | None) -> Config:
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(url: str, revision: str = "head", *, engine: Engine | None = None) -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    command.upgrade(_with_engine(alembic_config(url), engine), revision)


def downgrade(url: str, revision: str = "base", *, engine: Engine | None = None) -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    command.downgrade(_with_engine(alembic_config(url), engine), revision)


def head_revision() -> str | None:
    """The newest revision this package ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
