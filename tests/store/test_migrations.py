"""Alembic: upgrade to head matches the models exactly; downgrade to base and back works."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from latentspace.migrations import current_revision, downgrade, upgrade
from latentspace.store.tables import Base

TABLES = {"collections", "items", "item_vectors", "oplog", "index_manifests", "directions", "jobs"}


def diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_matches_the_models_and_downgrade_works(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    upgrade(url, engine=engine)
    assert current_revision(engine) == "0007"
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert diff(engine) == []
    downgrade(url, "base", engine=engine)
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(url, engine=engine)
    assert diff(engine) == []


def test_sqlite_durability_pragmas(tmp_path: object) -> None:
    from latentspace.store.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/p.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_0002_backfills_the_checksums_of_vectors_stored_before_it(engine: Engine) -> None:
    import zlib
    from datetime import UTC, datetime

    import numpy as np
    from sqlalchemy import text

    url = engine.url.render_as_string(hide_password=False)
    upgrade(url, "0001", engine=engine)
    now = datetime.now(UTC)
    blob = np.arange(4, dtype=np.float32).tobytes()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO collections (id, name, dim, fingerprint, metric, index_kind, "
                "index_params, created_at) VALUES (1, 'c', 4, 'f', 'cosine', 'auto', '{}', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO items (id, collection_id, external_id, kind, sha256, metadata, "
                "created_at, updated_at, deleted) VALUES (1, 1, 'a', 'vector', 's', '{}', :now, "
                ":now, false)"
            ),
            {"now": now},
        )
        conn.execute(text("INSERT INTO item_vectors (item_id, vector) VALUES (1, :v)"), {"v": blob})
    upgrade(url, engine=engine)
    assert current_revision(engine) == "0007"
    with engine.connect() as conn:
        checksum = conn.execute(text("SELECT checksum FROM item_vectors")).scalar()
    assert checksum == zlib.crc32(blob)


def test_0006_never_hands_a_deleted_collections_id_out_again(engine: Engine) -> None:
    # Before 0006, SQLite gave a new collection the id of the newest deleted one, and what
    # was kept by that id (index files, maps, other processes' caches) went with it.
    from datetime import UTC, datetime

    from sqlalchemy import text

    url = engine.url.render_as_string(hide_password=False)
    upgrade(url, "0005", engine=engine)
    now = datetime.now(UTC)
    insert = text(
        "INSERT INTO collections (name, dim, fingerprint, metric, index_kind, index_params, "
        "created_at) VALUES (:name, 4, 'f', 'cosine', 'auto', '{}', :now) RETURNING id"
    )
    with engine.begin() as conn:
        kept = conn.execute(insert, {"name": "kept", "now": now}).scalar_one()
        gone = conn.execute(insert, {"name": "gone", "now": now}).scalar_one()
        conn.execute(
            text(
                "INSERT INTO items (collection_id, external_id, kind, sha256, metadata, "
                "deleted, created_at, updated_at) "
                "VALUES (:c, 'a', 'vector', 's', '{}', false, :now, :now)"
            ),
            {"c": kept, "now": now},
        )
        conn.execute(text("DELETE FROM collections WHERE id = :id"), {"id": gone})
    upgrade(url, engine=engine)  # copies SQLite's table: its children must survive that
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM items")).scalar_one() == 1
        fresh = conn.execute(insert, {"name": "fresh", "now": now}).scalar_one()
        # A table knows only the ids it holds: one deleted before the upgrade may come back
        # once (start-up reserves the ids the data directory's folders name, see
        # tests/live), none deleted after it.
        assert fresh >= gone
        conn.execute(text("DELETE FROM collections WHERE id = :id"), {"id": fresh})
        assert conn.execute(insert, {"name": "again", "now": now}).scalar_one() > fresh
    assert diff(engine) == []
    downgrade(url, "0005", engine=engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM items")).scalar_one() == 1
