"""The items a filter lets through: the filter checked against the limits, then answered
by the collection's payload index (SQL is its reference), less the items past their
expiry (which no read serves, though the sweep has not deleted them yet)."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentspace import limits
from latentspace.service.context import Context
from latentspace.store.filters import count_nodes, validate_filter
from latentspace.store.tables import CollectionRow

__all__ = ["checked_filter", "expired_ids", "matching_ids"]


def checked_filter(ctx: Context, filter: dict[str, Any]) -> dict[str, Any]:
    """``filter`` validated and within the limits (nodes, JSON size).

    Raises:
        InvalidInput: it does not validate; LimitExceeded: it is too large.
    """
    limit = ctx.settings.limits
    limits.check(limit, "max_filter_nodes", count_nodes(filter), "nodes", "filter")
    limits.check_json(limit, filter, name="filter")
    return validate_filter(filter)


def matching_ids(ctx: Context, collection: CollectionRow, filter: dict[str, Any]) -> np.ndarray:
    """The sorted item ids of the live items that pass ``filter`` (the payload index).

    Raises:
        InvalidInput, LimitExceeded: see :func:`checked_filter`; QueryTimeout: too slow.
    """
    spec = checked_filter(ctx, filter)
    seconds = ctx.settings.limits.max_query_seconds
    matching = ctx.live.payloads.matching(collection, spec, seconds=seconds)
    expired = expired_ids(ctx, collection)
    return np.setdiff1d(matching, expired, assume_unique=True) if expired.size else matching


def expired_ids(ctx: Context, collection: CollectionRow) -> np.ndarray:
    """The sorted ids of the collection's items past their expiry that the sweep has not
    deleted yet: every read skips them."""
    return ctx.live.expiries.expired(collection, ctx.now().timestamp())
