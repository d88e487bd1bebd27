"""How a collection's index codes its rows: quantization, rescoring and the recall it holds.

These settings live in the collection's ``index_params`` beside the kind's own parameters:
``quantization`` (``auto``, ``none``, ``fp16``, ``sq8``, ``binary``), ``rescore``
(candidates per wanted hit rescored against the float32 vectors) and ``recall_target``
(what the save-time recall check holds an approximate index to). A change is applied by
rebuilding the index in the background while the current one keeps serving.
"""

from __future__ import annotations

from typing import Any

from latentspace.errors import InvalidInput
from latentspace.index import IndexSpec
from latentspace.live.indexes.setup import RECALL_TARGET, spec_params
from latentspace.service.context import Context
from latentspace.store import repository as repo
from latentspace.types import as_index_choice, as_metric

__all__ = ["CODE_KEYS", "checked_codes", "recall_target_of", "retune"]

CODE_KEYS = ("quantization", "rescore", "recall_target")


def checked_codes(
    *, dim: int, metric: str, index: str, params: dict[str, Any] | None
) -> dict[str, Any]:
    """``params`` with unset code settings dropped, checked against the collection.

    Raises:
        InvalidInput: a key that is not a code setting (:data:`CODE_KEYS`), a quantization
            the kind or metric cannot take (binary needs cosine or ip and a dim divisible
            by 8), a rescore outside 1–100, a recall target outside (0, 1].
    """
    unknown = sorted(set(params or {}) - set(CODE_KEYS))
    if unknown:  # a snapshot's manifest is the only way other keys could come in
        raise InvalidInput(
            f"index_params: {unknown[0]!r} is not a collection setting; use {list(CODE_KEYS)}"
        )
    out = {key: value for key, value in (params or {}).items() if value is not None}
    target = out.get("recall_target", RECALL_TARGET)
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1:
        raise InvalidInput(f"recall_target must be in (0, 1], got {target!r}")
    choice = as_index_choice(index)
    # an auto collection may grow into HNSW: its codes must suit that kind too
    IndexSpec("hnsw" if choice == "auto" else choice, as_metric(metric), spec_params(out))
    if out.get("quantization") == "binary" and dim % 8:
        raise InvalidInput(f"binary quantization needs a dim divisible by 8, not {dim}")
    return out


def recall_target_of(params: dict[str, Any] | None) -> float:
    """The recall@10 the collection's approximate index is held to."""
    return float((params or {}).get("recall_target", RECALL_TARGET))


def retune(ctx: Context, name: str, changes: dict[str, Any]) -> None:
    """Change the collection's code settings (keys of :data:`CODE_KEYS`; a None value
    resets that setting) and start the rebuild they ask for.

    Raises:
        NotFound: no such collection.
        InvalidInput: see :func:`checked_codes`.
    """
    unknown = set(changes) - set(CODE_KEYS)
    if unknown:
        raise InvalidInput(f"unknown settings {sorted(unknown)}; expected some of {CODE_KEYS}")
    with ctx.sessions.begin() as session:
        row = repo.get_collection(session=session, name=name)
        params = {**(row.index_params or {}), **changes}
        codes = {key: params.get(key) for key in CODE_KEYS}
        checked = checked_codes(dim=row.dim, metric=row.metric, index=row.index_kind, params=codes)
        kept = {key: value for key, value in params.items() if key not in CODE_KEYS}
        row.index_params = {**kept, **checked}
        session.flush()
        session.expunge(row)
    ctx.live.retuned(row)
