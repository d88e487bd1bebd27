"""Waking replicas at once on PostgreSQL: ``LISTEN`` on the oplog channel.

Every write transaction notifies :data:`latentspace.store.oplog.CHANNEL` (see
``oplog.serialize``); a replica that listens reads the oplog as soon as a write commits,
instead of at its next poll. Polling stays as the fallback (a lost connection, SQLite).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine

from latentspace.store.oplog import CHANNEL

__all__ = ["OplogListener"]

logger = logging.getLogger(__name__)


class OplogListener:
    """A dedicated connection listening for committed writes (PostgreSQL with psycopg 3)."""

    def __init__(self, engine: Engine) -> None:
        import psycopg

        url = engine.url.set(drivername="postgresql")
        self._conn: Any = psycopg.connect(
            url.render_as_string(hide_password=False), autocommit=True
        )
        self._conn.execute(f"LISTEN {CHANNEL}")

    @classmethod
    def for_engine(cls, engine: Engine) -> OplogListener | None:
        """A listener when the database can notify (PostgreSQL through psycopg), else None."""
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            return None
        try:
            return cls(engine)
        except Exception:  # polling still works; say why the fast path is off
            logger.exception("cannot LISTEN for oplog notifications; polling only")
            return None

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a notification; whether one came."""
        deadline = time.monotonic() + seconds
        for _ in self._conn.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
            return True
        return False

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
