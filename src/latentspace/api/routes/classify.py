"""Zero-shot classification and the auto-tagging job (its progress: ``routes/jobs``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response, status

from latentspace.api.convert import decode_base64, job_public
from latentspace.api.deps import AdminDep, AuthorizedRoute, ReadDep, ServiceDep
from latentspace.api.errors import NOT_FOUND
from latentspace.api.schemas import (
    AutotagRequest,
    Classified,
    ClassifyRequest,
    ClassifyResult,
    JobPublic,
    LabelIn,
    LabelProbability,
)
from latentspace.service import autotag, classify
from latentspace.service.classify import Label, LabelSpec
from latentspace.service.context import Context

__all__ = ["router"]

router = APIRouter(tags=["classify"], route_class=AuthorizedRoute, responses=NOT_FOUND)


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
