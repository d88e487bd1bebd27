"""Zero-shot classification, auto-tagging jobs and the jobs' progress."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from latentspace.api.schemas.common import StrictModel
from latentspace.service.autotag import FIELD_PATTERN
from latentspace.service.classify import MAX_TEMPERATURE, MIN_TEMPERATURE
from latentspace.types import JobState

__all__ = [
    "AutotagRequest",
    "Classified",
    "ClassifyRequest",
    "ClassifyResult",
    "JobList",
    "JobPublic",
    "LabelIn",
    "LabelProbability",
]

LabelName = Annotated[str, Field(min_length=1, max_length=256)]


class LabelIn(StrictModel):
    """A label whose vector is a stored direction's (instead of its prompts' mean)."""

    label: LabelName
    direction: str = Field(min_length=1, max_length=128, description="A stored direction.")


Labels = Annotated[
    list[LabelName | LabelIn],
    Field(
        min_length=1,
        description="Label names (each embedded through every template) or "
        "`{label, direction}` objects.",
    ),
]
Templates = Annotated[
    list[Annotated[str, Field(min_length=1)]] | None,
    Field(
        min_length=1,
        description="Prompt templates, each with `{}` for the label; their embeddings are "
        "averaged (prompt ensembling). Default: LATENTSPACE_CLASSIFY__TEMPLATES.",
    ),
]
Temperature = Annotated[
    float | None,
    Field(
        ge=MIN_TEMPERATURE,
        le=MAX_TEMPERATURE,
        allow_inf_nan=False,
        description="Softmax temperature over cosines; default "
        "LATENTSPACE_CLASSIFY__TEMPERATURE (0.01, CLIP's logit scale 100).",
    ),
]


class ClassifyRequest(StrictModel):
    """Stored items (by id) and uploaded images (base64) against labels."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"labels": ["red", "green", "blue"], "items": ["img-1", "img-2"], "k": 2},
                {
                    "labels": ["circle", "square", {"label": "bluish", "direction": "to-blue"}],
                    "images": ["iVBORw0KGgo..."],
                    "templates": ["a photo of a {}.", "a drawing of a {}."],
                    "temperature": 0.01,
                },
            ]
        },
    )

    labels: Labels
    items: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, description="Ids of stored items (their stored vectors are used)."
    )
    images: list[str] = Field(default_factory=list, description="Base64 images.")
    templates: Templates = None
    temperature: Temperature = None
    k: int = Field(default=1, ge=1, description="Labels per input (at most as many as labels).")

    @model_validator(mode="after")
    def _something(self) -> ClassifyRequest:
        if not self.items and not self.images:
            raise ValueError("nothing to classify: give items or images")
        return self


class LabelProbability(BaseModel):
    """A label and its softmax probability."""

    label: str
    probability: float


class Classified(BaseModel):
    """One input's top labels, most probable first: ``item`` names a stored item, ``image``
    the position of an uploaded image in the request."""

    item: str | None = None
    image: int | None = None
    labels: list[LabelProbability]


class ClassifyResult(BaseModel):
    """Items first, in the order given, then images."""

    results: list[Classified]
    took_ms: float


class AutotagRequest(StrictModel):
    """Tag every live item with its top label, in the background."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"labels": ["red", "green", "blue"], "field": "colour_tag"},
                {
                    "labels": ["circle", "square", "triangle", "star"],
                    "field": "shape_tag",
                    "min_probability": 0.5,
                    "probability_field": "shape_p",
                },
            ]
        },
    )

    labels: Labels
    templates: Templates = None
    temperature: Temperature = None
    field: str = Field(
        default="label", pattern=FIELD_PATTERN, description="Metadata key for the label."
    )
    min_probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Items whose top label is less probable are left untouched.",
    )
    probability_field: str | None = Field(
        default=None,
        pattern=FIELD_PATTERN,
        description="Metadata key for the top label's probability (not written when unset).",
    )


class JobPublic(BaseModel):
    """A background job: ``done`` of ``total`` items; ``error`` says why it failed."""

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


class JobList(BaseModel):
    """A collection's jobs, newest first."""

    jobs: list[JobPublic]
