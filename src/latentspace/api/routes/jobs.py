"""Background jobs (auto-tagging, maps, migrations): list, progress, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from latentspace.api.convert import job_public
from latentspace.api.deps import AdminDep, AuthorizedRoute, GrantDep, ReadDep, ServiceDep
from latentspace.api.errors import CONFLICT, NOT_FOUND
from latentspace.api.schemas import JobList, JobPublic
from latentspace.service import jobs

__all__ = ["router"]

router = APIRouter(tags=["jobs"], route_class=AuthorizedRoute, responses=NOT_FOUND)

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job's id.")]


@router.get("/v1/collections/{name}/jobs", dependencies=[ReadDep], summary="List jobs")
def list_jobs(name: str, ctx: ServiceDep) -> JobList:
    """The collection's background jobs, newest first."""
    return JobList(jobs=[job_public(j) for j in jobs.list_all(ctx, name)])


@router.get("/v1/jobs/{job_id}", dependencies=[ReadDep], summary="A job's state and progress")
def get_job(job_id: JobId, ctx: ServiceDep, grant: GrantDep) -> JobPublic:
    """State (queued, running, done, failed or cancelled) and progress (``done`` of
    ``total`` items) of a background job."""
    return job_public(jobs.get(ctx, job_id, grant.covers))


@router.post(
    "/v1/jobs/{job_id}/cancel",
    dependencies=[AdminDep],
    summary="Cancel a job",
    responses=CONFLICT,
)
def cancel_job(job_id: JobId, ctx: ServiceDep, grant: GrantDep) -> JobPublic:
    """Cancel a queued or running job: a running one stops before its next batch, and what
    it wrote stays. 409 when the job is already done or failed."""
    return job_public(jobs.cancel(ctx, job_id, grant.covers))
