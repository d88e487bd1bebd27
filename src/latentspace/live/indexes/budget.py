"""The memory guard: no write may grow the indexes past what this process gives them.

An index's size is estimated from its kind, quantization, dim and count
(:func:`latentspace.index.spec.estimate_bytes`: per vector, the code — 4·dim bytes for
float32, 2·dim fp16, dim sq8, dim/8 binary — plus an HNSW graph's 8·m + 8 bytes of links
and 8 bytes of id maps). A write of ``m`` vectors to a collection of ``n`` is refused when
the index it grows into at ``n + m`` would pass the budget left by the other collections'
measured indexes; the refusal (507) names the estimate, the budget and the quantizations
that would fit, before anything is written.
"""

from __future__ import annotations

import os

from latentspace.errors import OverMemoryBudget
from latentspace.index import IndexSpec, ManagedIndex
from latentspace.index.spec import estimate_bytes, quantization_of
from latentspace.settings import IndexSettings
from latentspace.store.tables import CollectionRow

__all__ = ["BUDGET_SHARE", "check_room", "total_budget"]

# Without a set budget, indexes may take this share of the machine's memory.
BUDGET_SHARE = 0.7


def total_budget(settings: IndexSettings) -> int:
    """Bytes every index of this process may take together: the setting, or 70 % of RAM."""
    if settings.memory_budget is not None:
        return settings.memory_budget
    return int(BUDGET_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_room(
    index: ManagedIndex, collection: CollectionRow, adding: int, *, others: int, budget: int
) -> None:
    """Refuse a write of ``adding`` vectors that the budget cannot hold.

    Raises:
        OverMemoryBudget: the estimate at ``len(index) + adding`` vectors passes
            ``budget - others`` (``others``: what the other collections' indexes hold).
    """
    n, room = len(index) + adding, budget - others
    spec = index.spec_at(n, room)
    need = estimate_bytes(spec, n, collection.dim)
    if need <= room:
        return
    fits = []
    for quantization in ("sq8", "binary"):
        if quantization == "binary" and (collection.metric == "l2" or collection.dim % 8):
            continue
        if quantization_of(spec) in (quantization, "binary"):
            continue
        kind = spec.kind if spec.kind in ("flat", "hnsw") else "hnsw"
        smaller = IndexSpec(kind, spec.metric, {"quantization": quantization})
        smaller_need = estimate_bytes(smaller.with_defaults(n, collection.dim), n, collection.dim)
        if smaller_need <= room:
            fits.append(f"quantization {quantization!r} would need {_mb(smaller_need)}")
    advice = "; ".join(fits) if fits else "no quantization fits: raise the budget"
    raise OverMemoryBudget(
        f"collection {collection.name!r}: {n:,} vectors in a {spec.kind} index "
        f"({quantization_of(spec)}) need about {_mb(need)}, over the {_mb(room)} left of "
        f"the {_mb(budget)} memory budget (LATENTSPACE_INDEX__MEMORY_BUDGET; other "
        f"collections hold {_mb(others)}); {advice}. Nothing was written."
    )


def _mb(n: int) -> str:
    if n < 2**20:
        return f"{n / 2**10:,.1f} KiB"
    return f"{n / 2**20:,.1f} MiB"
