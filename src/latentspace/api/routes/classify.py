"""Zero-shot classification, auto-tagging jobs, and every background job's progress."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from latentspace.api.convert import decode_base64, job_public
from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import CONFLICT, NOT_FOUND
from latentspace.api.schemas import (
    AutotagRequest,
    Classified,
    ClassifyRequest,
    ClassifyResult,
    JobList,
    JobPublic,
    LabelIn,
    LabelProbability,
)
from latentspace.service import autotag, classify, jobs
from latentspace.service.classify import Label, LabelSpec
from latentspace.service.context import Context

__all__ = ["router"]

router = APIRouter(tags=["classify"], route_class=AuthorizedRoute, responses=NOT_FOUND)

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job's id.")]


def _spec(
    ctx: Context,
    labels: list[str | LabelIn],
    templates: list[str] | None,
    temperature: float | None,
) -> LabelSpec:
    return classify.label_spec(
        ctx,
        [Label(x) if isinstance(x, str) else Label(x.label, x.direction) for x in labels],
        templates=templates,
        temperature=temperature,
    )


@router.post(
    "/v1/collections/{name}/classify",
    dependencies=[ReadDep],
    summary="Zero-shot classification of items and images",
)
def classify_inputs(name: str, body: ClassifyRequest, ctx: ServiceDep) -> ClassifyResult:
    """The ``k`` most probable labels of each stored item (``items``: ids) and uploaded
    image (``images``: base64). A label's vector is the normalised mean of its prompts
    (each template with ``{}`` replaced by the label) or a stored direction
    (``{label, direction}``); probabilities are ``softmax(cosine / temperature)``."""
    started = time.perf_counter()
    spec = _spec(ctx, body.labels, body.templates, body.temperature)
    images = [decode_base64(data, name=f"image {i}") for i, data in enumerate(body.images)]
    found = classify.classify(ctx, name, spec, items=body.items, images=images, k=body.k)
    return ClassifyResult(
        results=[
            Classified(
                item=c.item,
                image=c.image,
                labels=[
                    LabelProbability(label=p.label, probability=p.probability) for p in c.labels
                ],
            )
            for c in found
        ],
        took_ms=(time.perf_counter() - started) * 1000,
    )


@router.post(
    "/v1/collections/{name}/autotag",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AdminDep],
    summary="Tag every item with its top label (a background job)",
)
def start_autotag(
    name: str, body: AutotagRequest, ctx: ServiceDep, response: Response
) -> JobPublic:
    """Queue a job that classifies every live item's stored vector against ``labels`` and
    writes the top label into its metadata under ``field`` (a filter finds it afterwards).
    Answers 202 with the job; poll ``GET /v1/jobs/{id}`` (the ``Location``) for progress."""
    info = autotag.start(
        ctx,
        name,
        _spec(ctx, body.labels, body.templates, body.temperature),
        field=body.field,
        min_probability=body.min_probability,
        probability_field=body.probability_field,
    )
    response.headers["Location"] = f"/v1/jobs/{info.id}"
    return job_public(info)


@router.get("/v1/collections/{name}/jobs", dependencies=[ReadDep], summary="List jobs")
def list_jobs(name: str, ctx: ServiceDep) -> JobList:
    """The collection's background jobs, newest first."""
    return JobList(jobs=[job_public(j) for j in jobs.list_all(ctx, name)])


@router.get("/v1/jobs/{job_id}", dependencies=[ReadDep], summary="A job's state and progress")
def getjob_public(job_id: JobId, ctx: ServiceDep) -> JobPublic:
    """State (queued, running, done, failed or cancelled) and progress (``done`` of
    ``total`` items) of a background job."""
    return job_public(jobs.get(ctx, job_id))


@router.post(
    "/v1/jobs/{job_id}/cancel",
    dependencies=[AdminDep],
    summary="Cancel a job",
    responses=CONFLICT,
)
def canceljob_public(job_id: JobId, ctx: ServiceDep) -> JobPublic:
    """Cancel a queued or running job: a running one stops before its next batch, and what
    it wrote stays. 409 when the job is already done or failed."""
    return job_public(jobs.cancel(ctx, job_id))
