"""Engines with the durability settings the store relies on, and statement deadlines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from latentspace.errors import QueryTimeout
from latentspace.store.tables import utcnow

__all__ = [
    "Unreadable",
    "make_engine",
    "make_session_factory",
    "reserve_collection_ids",
    "statement_deadline",
]

# SQLite calls the progress handler every this many virtual-machine instructions.
_PROGRESS_STEPS = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Unreadable(dict[str, Any]):
    """What a JSON column holds when its stored text does not parse (a flipped byte, a hand
    edit): an empty object, so the one row reads as having no metadata instead of failing
    the whole query it is in; ``raw`` keeps the text. SQLite only: PostgreSQL's jsonb
    cannot hold text that does not parse."""

    def __init__(self, raw: str) -> None:
        super().__init__()
        self.raw = raw


def _tolerant_loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return Unreadable(text)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=FULL, foreign keys, busy timeout,
    and JSON values that do not parse read as :class:`Unreadable`."""
    if url.startswith("sqlite"):
        kwargs.setdefault("json_deserializer", _tolerant_loads)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(
    engine: Engine, clock: Callable[[], datetime] | None = None
) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (results are read after writes),
    whose "now" for expiry is ``clock`` (default: the system's UTC time; see
    :mod:`latentspace.store.expiry`)."""
    return sessionmaker(engine, expire_on_commit=False, info={"clock": clock or utcnow})


@contextmanager
def statement_deadline(session: Session, seconds: float | None) -> Iterator[None]:
    """Statements run inside this block are stopped after ``seconds`` (None: no deadline).

    SQLite: a progress handler that interrupts the statement once the deadline passed.
    PostgreSQL: ``statement_timeout`` for the rest of the session's transaction.

    Raises:
        QueryTimeout: a statement ran past the deadline.
    """
    if seconds is None:
        yield
        return
    connection = session.connection()
    dialect = connection.dialect.name
    raw: Any = None
    if dialect == "sqlite":
        raw = connection.connection.dbapi_connection
        deadline = time.monotonic() + seconds
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    elif dialect == "postgresql":
        milliseconds = str(max(1, int(seconds * 1000)))
        connection.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": milliseconds}
        )
    try:
        yield
    except OperationalError as e:
        interrupted = "interrupted" in str(e.orig) or getattr(e.orig, "sqlstate", "") == "57014"
        if not interrupted:
            raise
        raise QueryTimeout(
            f"the query ran past its deadline of {seconds:g} s "
            "(LATENTSPACE_LIMITS__MAX_QUERY_SECONDS); narrow the filter"
        ) from e
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)


def reserve_collection_ids(*, session: Session, upto: int) -> None:
    """Never hand out a collection id up to ``upto`` (ids that files still name): the id
    counter (SQLite's AUTOINCREMENT sequence, PostgreSQL's serial sequence) moves past it."""
    if upto <= 0:
        return
    if session.get_bind().dialect.name == "sqlite":
        session.execute(  # the table has no key: add the row only where there is none
            text(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'collections', 0 WHERE NOT "
                "EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'collections')"
            )
        )
        session.execute(
            text("UPDATE sqlite_sequence SET seq = max(seq, :n) WHERE name = 'collections'"),
            {"n": upto},
        )
        return
    sequence = session.execute(text("SELECT pg_get_serial_sequence('collections', 'id')")).scalar()
    last = session.execute(text(f"SELECT last_value FROM {sequence}")).scalar()  # PG's own name
    if last is None or last < upto:
        session.execute(text("SELECT setval(CAST(:s AS regclass), :n)"), {"s": sequence, "n": upto})
