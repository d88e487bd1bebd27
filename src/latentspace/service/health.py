"""Readiness: the database answers and every collection's index is open (or why not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from latentspace.errors import Unavailable
from latentspace.service import collections, tuning
from latentspace.service.context import Context
from latentspace.store import oplog
from latentspace.store.tables import CollectionRow

__all__ = ["Readiness", "readiness", "seen_by"]


@dataclass(frozen=True)
class Readiness:
    """Whether the instance can serve, and if not, why; ``unavailable`` names the
    collections that cannot serve (the others do) with their reasons; ``warm`` says whether
    the caches filled after start-up (hit rows, payload indexes) are complete; ``damaged``
    names, by collection, damage found in stored data, contained to what it touches."""

    ready: bool
    detail: str = ""
    unavailable: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    warm: bool = True
    below_recall_target: list[str] = field(default_factory=list)
    damaged: dict[str, list[str]] = field(default_factory=dict)


def readiness(ctx: Context) -> Readiness:
    """Ping the database, then check that every collection's index has been opened; not
    ready when start-up found a reason to refuse (``ctx.refusal``)."""
    try:
        with ctx.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        rows = collections.list_all(ctx)
    except SQLAlchemyError as e:  # any driver error means "not ready", never a crash
        return Readiness(False, f"database: {type(e).__name__}")
    if ctx.refusal is not None:
        return Readiness(False, ctx.refusal)
    unavailable = {}
    for row in rows:
        try:
            ctx.live.indexes.open(row)
        except Unavailable as e:
            unavailable[row.name] = str(e)
        if row.model in ctx.model_failures:
            unavailable[row.name] = f"model {row.model!r} cannot be loaded: "
            unavailable[row.name] += ctx.model_failures[row.model]
    warm = ctx.warmer is None or ctx.warmer.wait(0)
    return Readiness(
        True,
        unavailable=unavailable,
        warnings=list(ctx.warnings),
        warm=warm,
        below_recall_target=_below_target(ctx, rows),
        damaged=ctx.live.damage.report(),
    )


def seen_by(ready: Readiness, covers: Callable[[str], bool] | None) -> Readiness:
    """``ready`` as a caller who reaches only the collections ``covers`` accepts sees it
    (None: every one). Free-text warnings may name any collection, so only a caller who
    reaches every one sees them; the status stays (it is the whole server's)."""
    if covers is None:
        return ready
    return replace(
        ready,
        unavailable={n: why for n, why in ready.unavailable.items() if covers(n)},
        warnings=[],
        below_recall_target=[n for n in ready.below_recall_target if covers(n)],
        damaged={n: found for n, found in ready.damaged.items() if covers(n)},
    )


def _below_target(ctx: Context, rows: list[CollectionRow]) -> list[str]:
    # Collections whose last saved recall@10 is under their target.
    below = []
    with ctx.sessions() as session:
        for row in rows:
            manifest = oplog.get_manifest(session=session, collection=row)
            measured = None if manifest is None else manifest.recall_at_10
            if measured is not None and measured < tuning.recall_target_of(row.index_params):
                below.append(row.name)
    return below
