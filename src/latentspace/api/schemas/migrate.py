"""Model migration: the job that moves a collection to another model, and its adapters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.schemas.common import StrictModel

__all__ = ["AdapterList", "AdapterPublic", "MigrateRequest"]


class MigrateRequest(StrictModel):
    """Which model to move to, and how."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "tiny-shapes-b"},
                {"model": "st:/models/all-MiniLM-L6-v2", "mode": "adapter", "sample": 2000},
            ]
        },
    )

    model: str = Field(min_length=1, max_length=512, description="The new model's spec.")
    mode: Literal["reencode", "adapter"] = Field(
        default="reencode",
        description="reencode: every item's original (text, stored image) is encoded by the "
        "new model; adapter: only `sample` of them are, and every other item's vector is "
        "carried through an adapter fitted on those (for items without originals, or when "
        "re-encoding costs too much).",
    )
    adapter: Literal["auto", "procrustes", "affine"] | None = Field(
        default="auto",
        description="The adapter fitted from the old space to the new (also in reencode mode, "
        "so clients of the old model can still query through it); auto keeps the one with "
        "the better held-out recall@10; null: none (reencode only).",
    )
    sample: int = Field(
        default=1000,
        ge=24,
        le=1_000_000,
        description="Items encoded by both models (adapter mode).",
    )
    rank: int | None = Field(
        default=None, ge=1, le=65_536, description="The affine adapter's rank (null: full)."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the sample and split.")


class AdapterPublic(BaseModel):
    """A fitted adapter into a space of the collection."""

    source_model: str | None
    source_fingerprint: str
    target_fingerprint: str
    kind: str
    dim_in: int
    dim_out: int
    recall_at_10: float | None = Field(
        description="How much of a full re-encode's top-10 the adapted vectors find, on items "
        "held out of the fit."
    )
    fitted_on: int
    created_at: str
    current: bool = Field(
        description="Whether it maps into the collection's present space (queries can use it)."
    )


class AdapterList(BaseModel):
    """A collection's adapters, newest first."""

    adapters: list[AdapterPublic]
