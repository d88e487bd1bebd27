"""The map of a collection: the job that fits it, and what reading it returns."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from latentspace.api.schemas.common import StrictModel

__all__ = ["MapCluster", "MapPublic", "MapRequest"]


class MapRequest(StrictModel):
    """How to fit the map."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {},
                {"method": "umap", "vocabulary": ["a cat", "a dog", "a car"]},
                {"method": "pca", "min_cluster_size": 20},
            ]
        },
    )

    method: Literal["auto", "umap", "pca"] = Field(
        default="auto",
        description="auto: UMAP (cosine) from 200 items, PCA below; or either one.",
    )
    vocabulary: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Labels to name clusters by (zero-shot); empty: each cluster is named by "
        "the stored text nearest its centroid.",
    )
    min_cluster_size: int | None = Field(
        default=None, ge=2, le=1_000_000, description="HDBSCAN's; default √n / 4 (at least 5)."
    )


class MapCluster(BaseModel):
    """A cluster: its number, size, name, the member nearest its centroid, its centre."""

    id: int
    size: int
    label: str | None
    example: str
    x: float
    y: float


class MapPublic(BaseModel):
    """Every live item's point and cluster (-1: none), as columns in the same order."""

    seq: int = Field(description="The oplog sequence this map is of.")
    fitted_seq: int = Field(description="The sequence it was fitted at.")
    method: str
    placed: int = Field(description="Points written after the fit, placed without refitting.")
    ids: list[str]
    x: list[float]
    y: list[float]
    cluster: list[int]
    clusters: list[MapCluster]
