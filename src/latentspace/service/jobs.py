"""Background jobs as the API shows them: create (queued), look up, list, cancel.

The work itself runs on the context's :class:`~latentspace.runner.JobRunner`;
each kind's handler lives in its use-case module (auto-tagging: ``service.autotag``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from latentspace.errors import Conflict, NotFound
from latentspace.service import collections
from latentspace.service.context import Context
from latentspace.store import jobs as jobs_repo
from latentspace.store.tables import CollectionRow, JobRow, as_utc
from latentspace.types import JOB_STATES, JobState

__all__ = ["JobInfo", "cancel", "get", "list_all", "submit"]


@dataclass(frozen=True)
class JobInfo:
    """A job's state and progress: ``done`` of ``total`` items (``total`` is the count of
    live items when it started; items added meanwhile are done too), and why it failed."""

    id: int
    collection: str
    kind: str
    state: JobState
    done: int
    total: int
    params: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str


def _state(value: str) -> JobState:
    for state in JOB_STATES:
        if value == state:
            return state
    raise ValueError(f"unknown job state {value!r}")


def _stamp(value: datetime) -> str:
    return as_utc(value).isoformat()


def _info(row: JobRow, collection: str) -> JobInfo:
    return JobInfo(
        id=row.id,
        collection=collection,
        kind=row.kind,
        state=_state(row.state),
        done=row.done,
        total=row.total,
        params={k: v for k, v in row.params.items() if not k.startswith("_")},
        error=row.error,
        created_at=_stamp(row.created_at),
        updated_at=_stamp(row.updated_at),
    )


def submit(
    ctx: Context, collection: CollectionRow, kind: str, params: dict[str, Any], *, total: int
) -> JobInfo:
    """Store a queued job and hand it to the runner; the job as stored."""
    with ctx.sessions.begin() as session:
        row = jobs_repo.create_job(
            session=session, collection=collection, kind=kind, params=params, total=total
        )
        info = _info(row, collection.name)
    ctx.jobs.submit(info.id)
    return info


def get(ctx: Context, job_id: int, covers: Callable[[str], bool] = collections.every) -> JobInfo:
    """A job by id, if its collection is one that ``covers`` accepts.

    Raises:
        NotFound: no such job (or one of a collection beyond ``covers``).
    """
    with ctx.sessions() as session:
        row, collection = jobs_repo.get_job(session=session, job_id=job_id)
        if not covers(collection):
            raise NotFound(f"job {job_id} does not exist")
        return _info(row, collection)


def list_all(ctx: Context, name: str) -> list[JobInfo]:
    """A collection's jobs, newest first.

    Raises:
        NotFound: no such collection.
    """
    collection = collections.get(ctx, name)
    with ctx.sessions() as session:
        return [_info(r, name) for r in jobs_repo.list_jobs(session=session, collection=collection)]


def cancel(ctx: Context, job_id: int, covers: Callable[[str], bool] = collections.every) -> JobInfo:
    """Cancel a queued or running job (a running one stops before its next batch; what
    it did so far stays); cancelling a cancelled job changes nothing.

    Raises:
        NotFound: no such job (or one of a collection beyond ``covers``).
        Conflict: the job is already done or failed.
    """
    get(ctx, job_id, covers)
    with ctx.sessions.begin() as session:
        jobs_repo.get_job(session=session, job_id=job_id)
        moved = jobs_repo.transition(
            session=session, job_id=job_id, to="cancelled", from_=jobs_repo.UNFINISHED
        )
    if moved:
        ctx.jobs.cancelled(job_id)
    info = get(ctx, job_id)
    if not moved and info.state != "cancelled":
        raise Conflict(f"job {job_id} is already {info.state}; only queued or running jobs cancel")
    return info
