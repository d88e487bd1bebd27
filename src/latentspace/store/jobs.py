"""Repository functions for background jobs (``session`` keyword-only, caller commits).

A job's state changes only by conditional updates (``… WHERE state IN (…)``), so a cancel
and the worker's next progress write cannot both win: whichever commits second finds the
row no longer in the state it expected and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from latentspace.errors import NotFound
from latentspace.store.tables import CollectionRow, JobRow, utcnow
from latentspace.types import JobState

__all__ = [
    "UNFINISHED",
    "advance",
    "claim",
    "collection_by_id",
    "create_job",
    "finish_with",
    "get_job",
    "latest_job",
    "list_jobs",
    "transition",
    "unfinished_jobs",
]

# The states a restart resumes from.
UNFINISHED: tuple[JobState, ...] = ("queued", "running")


def create_job(
    *,
    session: Session,
    collection: CollectionRow,
    kind: str,
    params: dict[str, Any],
    total: int = 0,
) -> JobRow:
    """Add a queued job (flushed, so it has its id; not committed)."""
    now = utcnow()
    row = JobRow(
        collection_id=collection.id,
        kind=kind,
        params=params,
        state="queued",
        done=0,
        total=total,
        cursor=0,
        error=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_job(*, session: Session, job_id: int) -> tuple[JobRow, str]:
    """A job and the name of its collection.

    Raises:
        NotFound: no job with that id (its collection's deletion removes its jobs).
    """
    found = session.execute(
        select(JobRow, CollectionRow.name)
        .join(CollectionRow, CollectionRow.id == JobRow.collection_id)
        .where(JobRow.id == job_id)
    ).first()
    if found is None:
        raise NotFound(f"job {job_id} does not exist")
    return found[0], str(found[1])


def collection_by_id(*, session: Session, collection_id: int) -> CollectionRow:
    """The collection a job belongs to.

    Raises:
        NotFound: it was deleted.
    """
    row = session.get(CollectionRow, collection_id)
    if row is None:
        raise NotFound(f"collection {collection_id} does not exist")
    return row


def list_jobs(*, session: Session, collection: CollectionRow) -> list[JobRow]:
    """The collection's jobs, newest first."""
    return list(
        session.scalars(
            select(JobRow).where(JobRow.collection_id == collection.id).order_by(JobRow.id.desc())
        )
    )


def latest_job(*, session: Session, collection: CollectionRow, kind: str) -> JobRow | None:
    """The collection's newest job of ``kind``, or None."""
    return session.scalars(
        select(JobRow)
        .where(JobRow.collection_id == collection.id, JobRow.kind == kind)
        .order_by(JobRow.id.desc())
        .limit(1)
    ).first()


def unfinished_jobs(*, session: Session) -> list[int]:
    """Ids of the jobs that were queued or running, oldest first (what a restart resumes)."""
    return list(
        session.scalars(select(JobRow.id).where(JobRow.state.in_(UNFINISHED)).order_by(JobRow.id))
    )


def transition(
    *,
    session: Session,
    job_id: int,
    to: JobState,
    from_: Sequence[JobState],
    error: str | None = None,
) -> bool:
    """Move a job to state ``to`` if it is in one of ``from_``; whether it moved."""
    values: dict[str, Any] = {"state": to, "updated_at": utcnow()}
    if error is not None:
        values["error"] = error
    result = session.execute(
        update(JobRow).where(JobRow.id == job_id, JobRow.state.in_(list(from_))).values(**values)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


def claim(*, session: Session, job_id: int) -> JobRow | None:
    """Mark an unfinished job running; the row, or None when it was finished or removed."""
    if not transition(session=session, job_id=job_id, to="running", from_=UNFINISHED):
        return None
    return session.get(JobRow, job_id, populate_existing=True)


def advance(*, session: Session, job_id: int, done: int, total: int, cursor: int) -> bool:
    """Record a running job's progress; False when it is no longer running (cancelled,
    or its collection deleted): the caller then rolls back and stops."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.state == "running")
        .values(done=done, total=total, cursor=cursor, updated_at=utcnow())
    )
    return bool(cast(CursorResult[Any], result).rowcount)


def finish_with(*, session: Session, job_id: int, done: int, result: dict[str, Any]) -> bool:
    """Record a running job's last progress (``done`` of ``done``) and its ``params.result``;
    False when it is no longer running (cancelled, or its collection deleted)."""
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None or row.state != "running":
        return False
    row.params = {**row.params, "result": result}
    return advance(session=session, job_id=job_id, done=done, total=done, cursor=0)
