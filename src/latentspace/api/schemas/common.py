"""Shared pieces of the request and response bodies: the problem shape, names, includes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_INCLUDE", "NAME_PATTERN", "Include", "Problem", "StrictModel"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
Include = Literal["metadata", "text", "uri", "document_id", "sha256", "vector"]
DEFAULT_INCLUDE: list[Include] = ["metadata", "text", "uri", "document_id"]


class StrictModel(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class OpenAIErrorDetail(BaseModel):
    """What OpenAI's API says went wrong; ``code`` is the problem type's last part."""

    message: str = Field(examples=["model 'nope' is not a model spec or a collection"])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(default=None, examples=["model"])
    code: str | None = Field(default=None, examples=["not-found"])


class OpenAIError(BaseModel):
    """The error shape of the OpenAI-compatible routes, so the ``openai`` SDK can show it."""

    error: OpenAIErrorDetail


class Problem(BaseModel):
    """An RFC 9457 problem: every error the API returns has this shape."""

    type: str = Field(examples=["/problems/not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["collection 'photos' does not exist"])
    instance: str | None = Field(default=None, examples=["/v1/collections/photos"])
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field (validation) or per-item (batch) errors."
    )
