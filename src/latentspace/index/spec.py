"""Index kinds, their parameters, and the ``auto`` planner.

``auto`` follows autofaiss' reasoning: exact search while it is cheap (the caller passes the
line, see :mod:`latentspace.index.cost`), then HNSW while its graph and full vectors fit the
memory budget, then IVF-PQ, whose codes take a fraction of the memory. The choice and its
parameters are recorded in the spec.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import faiss
import numpy as np

from latentspace.errors import InvalidInput
from latentspace.index.base import SearchParams
from latentspace.index.codes import QUANTIZATIONS, RESCORE, code_bytes
from latentspace.types import INDEX_KINDS, METRICS, Metric

__all__ = [
    "BRUTE_FORCE_LIMIT",
    "EXACT_LIMIT",
    "KINDS",
    "MAX_FILTERED_EF",
    "IndexSpec",
    "buildable",
    "create_faiss",
    "estimate_bytes",
    "exact_below",
    "plan_index",
    "quantization_of",
    "rescore_of",
    "search_parameters",
    "training_minimum",
    "widened",
]

KINDS: tuple[str, ...] = INDEX_KINDS
# The line between exact search and HNSW when the caller measured none (vectors).
EXACT_LIMIT = 50_000
_HNSW_M = 32
_BINARY_HNSW_M = 16  # sign bits are 32× smaller than floats; a thinner graph keeps pace
# ``auto`` quantization: float32 below this many vectors, sq8 (rescored) from here on.
AUTO_SQ8_FROM = 1_000_000
# sq8 learns each dimension's range from this many vectors (exact search until then).
SQ8_TRAINING = 1_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSpec:
    """What to build: ``kind`` with ``params``; ``factory`` holds a FAISS factory string."""

    kind: str
    metric: Metric = "cosine"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, "factory"):
            raise InvalidInput(f"unknown index kind {self.kind!r}; expected one of {KINDS}")
        if self.metric not in METRICS:
            raise InvalidInput(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if self.kind == "factory" and not isinstance(self.params.get("factory"), str):
            raise InvalidInput("a factory index needs params.factory, e.g. 'IVF256,SQ8'")
        quantization = self.params.get("quantization", "none")
        if quantization not in QUANTIZATIONS:
            raise InvalidInput(
                f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}"
            )
        if quantization != "none" and self.kind not in ("flat", "hnsw"):
            raise InvalidInput(
                f"quantization {quantization!r} applies to flat and hnsw indexes; "
                f"{self.kind} keeps its own codes (ivfpq is the product-quantized kind)"
            )
        if quantization == "binary" and self.metric == "l2":
            raise InvalidInput("binary quantization compares signs: use cosine or ip, not l2")
        rescore = self.params.get("rescore", 1)
        if isinstance(rescore, bool) or not isinstance(rescore, int) or not 1 <= rescore <= 100:
            raise InvalidInput(f"rescore must be an integer from 1 to 100, got {rescore!r}")

    def with_defaults(self, n: int, dim: int) -> IndexSpec:
        """Fill in the parameters this spec leaves open, for ``n`` vectors of ``dim``."""
        defaults: dict[str, Any] = {}
        if self.kind == "hnsw":
            m = _BINARY_HNSW_M if quantization_of(self) == "binary" else _HNSW_M
            defaults = {"m": m, "ef_construction": 80, "ef_search": 64}
        elif self.kind in ("ivf", "ivfpq"):
            nlist = _nlist(n)
            defaults = {"nlist": nlist, "nprobe": max(8, nlist // 32)}
            if self.kind == "ivfpq":
                defaults.update(
                    {"m": _pq_m(dim, 2), "nbits": 8, "refine": "SQ8", "refine_factor": 4}
                )
        return replace(self, params={**defaults, **self.params})

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (for manifests and the collections table)."""
        return {"kind": self.kind, "metric": self.metric, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexSpec:
        """Inverse of :meth:`to_json`."""
        return cls(data["kind"], data.get("metric", "cosine"), dict(data.get("params", {})))


def quantization_of(spec: IndexSpec) -> str:
    """How the index stores its rows: ``none`` (float32), ``fp16``, ``sq8`` or ``binary``."""
    return str(spec.params.get("quantization", "none"))


def rescore_of(spec: IndexSpec) -> int:
    """Candidates a search scores exactly per wanted hit (1: the codes' scores are final)."""
    quantization = quantization_of(spec)
    return int(spec.params.get("rescore", RESCORE[quantization]))


def _nlist(n: int) -> int:
    # ~4·√n lists, a power of two, and at least 39 training points per list.
    target = 4 * math.sqrt(max(n, 1))
    nlist = int(2 ** max(0, round(math.log2(target))))
    return max(1, min(nlist, max(1, n // 39), 65_536))


def _pq_m(dim: int, dims_per_code: int) -> int:
    # ``dims_per_code`` dimensions per sub-quantizer, rounded down to a divisor of dim.
    m = max(1, dim // dims_per_code)
    while dim % m:
        m -= 1
    return m


def estimate_bytes(spec: IndexSpec, n: int, dim: int) -> int:
    """Rough resident size of an index of ``n`` vectors (ids and graph links included)."""
    per_vector = 8  # the id map
    codes = code_bytes(quantization_of(spec), dim)
    if spec.kind == "hnsw":  # level 0 links 2·m neighbours; upper levels add ~1/m of that
        per_vector += codes + 2 * 4 * int(spec.params.get("m", _HNSW_M)) + 8
    elif spec.kind == "ivfpq":
        per_vector += int(spec.params.get("m", _pq_m(dim, 2))) + 8  # codes + list id
        if spec.params.get("refine", "SQ8") == "SQ8":
            per_vector += dim  # one byte a dimension for the exact-ish re-ranking
    elif spec.kind == "flat":
        per_vector += codes
    else:
        per_vector += 4 * dim
    return n * per_vector


def plan_index(
    n: int,
    dim: int,
    metric: Metric = "cosine",
    memory_budget: int | None = None,
    *,
    exact_limit: int = EXACT_LIMIT,
    quantization: str = "auto",
    rescore: int | None = None,
) -> IndexSpec:
    """The ``auto`` choice for ``n`` vectors of ``dim`` under ``memory_budget`` bytes.

    Exact below ``exact_limit``; then HNSW over float32 rows below :data:`AUTO_SQ8_FROM`
    vectors and over sq8 codes (rescored) from there, or as soon as float32 would not fit;
    IVF-PQ when no HNSW fits. A ``quantization`` other than ``auto`` is kept as asked, and
    a quantized choice rescores ``rescore`` candidates per hit when that is given.
    """
    spec = _plan(n, dim, metric, memory_budget, exact_limit, quantization)
    if rescore is not None and quantization_of(spec) != "none":
        return replace(spec, params={**spec.params, "rescore": rescore})
    return spec


def _plan(
    n: int, dim: int, metric: Metric, memory_budget: int | None, exact_limit: int, quantization: str
) -> IndexSpec:
    fixed = {} if quantization in ("auto", "none") else {"quantization": quantization}
    if n < exact_limit:
        return IndexSpec("flat", metric, fixed).with_defaults(n, dim)
    if quantization != "auto":
        options = [quantization]
    else:
        options = (["none"] if n < AUTO_SQ8_FROM else []) + ["sq8"]
    hnsw = [
        IndexSpec("hnsw", metric, {} if q == "none" else {"quantization": q}).with_defaults(n, dim)
        for q in options
    ]
    for spec in hnsw:
        if memory_budget is None or estimate_bytes(spec, n, dim) <= memory_budget:
            return spec
    # IVF-PQ: the most accurate codes that fit, re-ranked with SQ8 while that fits too.
    candidates = [
        IndexSpec("ivfpq", metric, {"m": _pq_m(dim, per), "refine": refine}).with_defaults(n, dim)
        for refine in ("SQ8", "none")
        for per in (2, 4, 8, 16, 32)
    ]
    for spec in candidates:
        if estimate_bytes(spec, n, dim) <= memory_budget:  # type: ignore[operator]
            return spec
    logger.warning("no index of %d × %d fits %d bytes; using the smallest", n, dim, memory_budget)
    return candidates[-1]


def training_minimum(spec: IndexSpec) -> int:
    """Vectors an index of ``spec`` needs before it can be trained (0: none).

    IVF-PQ's product quantizer learns ``2**nbits`` centroids per sub-space and cannot train
    on fewer points; IVF adapts ``nlist`` to what it is given; the other kinds need no
    training. A factory string is not known ahead: it is tried, and a failure is handled
    where it is built.
    """
    if spec.kind == "ivfpq":
        return int(2 ** int(spec.params.get("nbits", 8)))
    if quantization_of(spec) == "sq8":
        return SQ8_TRAINING
    if spec.kind == "ivf":
        return 1
    return 0


def buildable(spec: IndexSpec, n: int) -> IndexSpec:
    """``spec``, or exact search while ``n`` vectors are too few to train it."""
    if n < training_minimum(spec):
        return IndexSpec("flat", spec.metric)
    return spec


def _factory_string(spec: IndexSpec, n_train: int) -> tuple[IndexSpec, str]:
    # The FAISS factory string of ``spec`` (with its defaults filled in) for ``n_train``
    # training vectors, and the spec it builds (IVF's nlist shrinks to what they can train).
    p, kind = spec.params, spec.kind
    codes = {"none": "Flat", "fp16": "SQfp16", "sq8": "SQ8"}.get(quantization_of(spec), "")
    if kind == "flat":
        return spec, "Flat" if codes == "Flat" else codes
    if kind == "hnsw":
        return spec, f"HNSW{int(p['m'])},{codes}"
    if kind == "factory":
        return spec, str(p["factory"])
    nlist = min(int(p["nlist"]), max(1, n_train // 39))
    if nlist != p["nlist"]:
        logger.info("IVF trained on %d vectors: nlist lowered to %d", n_train, nlist)
        spec = IndexSpec(kind, spec.metric, {**p, "nlist": nlist})
    if kind == "ivf":
        return spec, f"IVF{nlist},Flat"
    # "np": no polysemous training, which costs ~2 s per sub-quantizer and buys nothing here
    refine = ",Refine(SQ8)" if p.get("refine", "SQ8") == "SQ8" else ""
    return spec, f"IVF{nlist},PQ{int(p['m'])}x{int(p['nbits'])}np{refine}"


def create_faiss(requested: IndexSpec, dim: int, train: np.ndarray) -> tuple[IndexSpec, Any]:
    """A new, empty FAISS index for ``requested`` (trained on ``train`` where the kind
    needs it; labels are positions, IVF-Flat's come from a hashtable direct map), and the
    spec with every parameter chosen."""
    spec, factory = _factory_string(requested.with_defaults(train.shape[0], dim), train.shape[0])
    metric = faiss.METRIC_L2 if spec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    inner: Any
    if quantization_of(spec) == "binary":
        if dim % 8:
            raise InvalidInput(f"binary quantization needs a dim divisible by 8, not {dim}")
        if spec.kind == "flat":
            return spec, faiss.IndexBinaryFlat(dim)
        inner = faiss.IndexBinaryHNSW(dim, int(spec.params["m"]))
    else:
        inner = faiss.index_factory(dim, factory, metric)
    if spec.kind == "hnsw":
        inner.hnsw.efConstruction = int(spec.params["ef_construction"])
        inner.hnsw.efSearch = int(spec.params["ef_search"])
    if not inner.is_trained:
        sample = train
        cap = max(64 * 1024, 64 * int(spec.params.get("nlist", 1)))
        if train.shape[0] > cap:
            rng = np.random.default_rng(0)
            sample = train[rng.choice(train.shape[0], cap, replace=False)]
        inner.train(sample)
    if spec.kind == "ivf":  # a hashtable direct map gives remove and reconstruct by label
        inner.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    return spec, inner


def search_parameters(spec: IndexSpec, params: SearchParams, selector: Any, *, on_gpu: bool) -> Any:
    """FAISS ``SearchParameters`` for one search of an index of ``spec`` (None: defaults).

    Per-query ``nprobe``/``efSearch`` and the id ``selector`` travel here, so a shared
    index is never mutated for a query. GPU indexes take no selector and only ``nprobe``.
    """
    kind, p = spec.kind, spec.params
    out: Any
    if on_gpu:
        if kind == "ivf" and params.nprobe is not None:
            out = faiss.SearchParametersIVF()
            out.nprobe = params.nprobe
            return out
        return None
    if kind == "hnsw":
        out = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from the stubs
        out.efSearch = int(params.ef_search or p["ef_search"])
    elif kind in ("ivf", "ivfpq"):
        out = faiss.SearchParametersIVF()
        out.nprobe = int(params.nprobe or p["nprobe"])
        if kind == "ivfpq" and p.get("refine", "SQ8") == "SQ8":
            base, out = out, faiss.IndexRefineSearchParameters()
            base.sel = selector
            out.base_index_params = base
            out.k_factor = float(p["refine_factor"])
            out.referenced = base
    elif selector is None:
        return None
    else:
        out = faiss.SearchParameters()
    if selector is not None:
        out.sel = selector
    return out


# The widest graph walk a filtered HNSW search takes before the exact fallback decides.
MAX_FILTERED_EF = 4096
# A filtered walk keeps this many times the allowed hits it needs in expectation.
FILTER_EF_FACTOR = 2


def widened(spec: IndexSpec, params: SearchParams, fraction: float, want: int) -> SearchParams:
    """The knobs of a search for ``want`` hits whose filter lets ``fraction`` through.

    HNSW's walk scores every point it passes but keeps only allowed ones, so its beam
    (``efSearch``) must hold about ``want / fraction`` points for ``want`` of them to be
    allowed: it grows to twice that (capped), never below the default. IVF probes lists
    whose allowed share is ``fraction``, so ``nprobe`` grows as ``1 / fraction``. Knobs
    the caller set are kept.
    """
    if fraction >= 1.0 or fraction <= 0.0:
        return params
    p = spec.params
    if spec.kind == "hnsw" and params.ef_search is None:
        ef = min(MAX_FILTERED_EF, math.ceil(FILTER_EF_FACTOR * want / fraction))
        return replace(params, ef_search=max(ef, int(p["ef_search"])))
    if spec.kind in ("ivf", "ivfpq") and params.nprobe is None and "nlist" in p:
        nprobe = min(int(p["nlist"]), math.ceil(int(p["nprobe"]) / fraction))
        return replace(params, nprobe=max(nprobe, int(p["nprobe"])))
    return params


# An allow-list this short is searched exactly instead of through the ANN structure. Exact
# scoring costs ~0.45 us a match (gathering the rows, then one matrix product); a walk for k
# hits keeps a beam of 2k / selectivity = 2k n / m points at ~10 us each (HNSW, M=32, 384-d):
# the two cross near m = sqrt(400 n) for k = 10 (9k at 200k, 20k at a million), capped.
BRUTE_FORCE_LIMIT = 50_000


def exact_below(total: int) -> int:
    """How many allowed ids out of ``total`` are scored exactly rather than walked."""
    return int(min(BRUTE_FORCE_LIMIT, max(1_000, math.sqrt(400 * total))))
