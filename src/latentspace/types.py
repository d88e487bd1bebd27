"""Literal types shared by the store, the index, the service and the API (one spelling each).

The SQL columns hold plain strings; :func:`as_metric` and :func:`as_index_choice` narrow a
stored value back to its literal type (and refuse anything else).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from latentspace.errors import InvalidInput

__all__ = [
    "DUPLICATE_ACTIONS",
    "DUPLICATE_TIERS",
    "INDEX_CHOICES",
    "INDEX_KINDS",
    "ITEM_STATUSES",
    "JOB_STATES",
    "METRICS",
    "TERM_KINDS",
    "DuplicateAction",
    "DuplicateTier",
    "FilterStrategy",
    "GpuMode",
    "IndexChoice",
    "IndexKind",
    "ItemKind",
    "ItemStatus",
    "JobState",
    "Metric",
    "TermKind",
    "TimingHook",
    "WriteStatus",
    "as_index_choice",
    "as_metric",
]

Metric = Literal["cosine", "ip", "l2"]
# How a search applied its filter: the matching items scored exactly, the index walk
# restricted to them (an id selector), or the index's best each checked afterwards.
FilterStrategy = Literal["exact", "selector", "post-check"]
IndexKind = Literal["flat", "hnsw", "ivf", "ivfpq"]
IndexChoice = Literal["auto", "flat", "hnsw", "ivf", "ivfpq"]
ItemKind = Literal["text", "image", "vector"]
WriteStatus = Literal["created", "updated", "unchanged"]
ItemStatus = Literal["created", "updated", "unchanged", "skipped", "error"]
# How a finding duplicates a stored item, strongest first: the same bytes, the same picture
# (perceptual hash within a Hamming radius), or a similar one (encoder cosine).
DuplicateTier = Literal["identical", "same_image", "similar"]
# What ingest does with an item that duplicates another: store it anyway, leave it out
# (status "skipped"), or refuse the whole request (409, nothing written).
DuplicateAction = Literal["store", "skip", "reject"]
TermKind = Literal["text", "image", "item", "vector", "direction", "keyword"]
GpuMode = Literal["auto", "on", "off"]
# A background job's life: queued → running → done | failed | cancelled (running → queued
# again when the server stops mid-job; a restart resumes queued and running jobs).
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
# (what, label, seconds): e.g. ("encode", "text", 0.004) or ("search", "hnsw", 0.001).
TimingHook = Callable[[str, str, float], None]

METRICS: tuple[Metric, ...] = get_args(Metric)
INDEX_KINDS: tuple[IndexKind, ...] = get_args(IndexKind)
INDEX_CHOICES: tuple[IndexChoice, ...] = get_args(IndexChoice)
ITEM_STATUSES: tuple[ItemStatus, ...] = get_args(ItemStatus)
TERM_KINDS: tuple[TermKind, ...] = get_args(TermKind)
JOB_STATES: tuple[JobState, ...] = get_args(JobState)
DUPLICATE_TIERS: tuple[DuplicateTier, ...] = get_args(DuplicateTier)
DUPLICATE_ACTIONS: tuple[DuplicateAction, ...] = get_args(DuplicateAction)


def as_metric(value: str) -> Metric:
    """``value`` as a :data:`Metric`.

    Raises:
        InvalidInput: not one of :data:`METRICS`.
    """
    for metric in METRICS:
        if value == metric:
            return metric
    raise InvalidInput(f"unknown metric {value!r}; use one of {list(METRICS)}")


def as_index_choice(value: str) -> IndexChoice:
    """``value`` as an :data:`IndexChoice` (``auto`` or an index kind).

    Raises:
        InvalidInput: not ``auto`` nor one of :data:`INDEX_KINDS`.
    """
    for choice in INDEX_CHOICES:
        if value == choice:
            return choice
    raise InvalidInput(f"unknown index kind {value!r}; use auto or one of {list(INDEX_KINDS)}")
