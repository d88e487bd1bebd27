"""Prometheus metrics, in a registry owned by one app (no process-global collectors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# name -> (live items, index kind)
IndexSizes = Callable[[], dict[str, tuple[int, str]]]


class _IndexCollector(Collector):
    def __init__(self, sizes: IndexSizes) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "latentspace_index_vectors",
            "Vectors in each collection's live index.",
            labels=["collection", "kind"],
        )
        for name, (count, kind) in sorted(self._sizes().items()):
            gauge.add_metric([name, kind], count)
        yield gauge


class _SweptCollector(Collector):
    def __init__(self, swept: Callable[[], dict[str, int]]) -> None:
        self._swept = swept

    def collect(self) -> Iterator[CounterMetricFamily]:
        counter = CounterMetricFamily(
            "latentspace_expired_items_deleted",
            "Items the sweep deleted after their expiry, by collection (this process).",
            labels=["collection"],
        )
        for name, count in sorted(self._swept().items()):
            counter.add_metric([name], count)
        yield counter


class _Seen(Collector):
    # a registry's families with the samples of collections beyond ``covers`` left out
    def __init__(self, registry: CollectorRegistry, covers: Callable[[str], bool]) -> None:
        self._registry = registry
        self._covers = covers

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            seen = Metric(family.name, family.documentation, family.type, family.unit)
            seen.samples = [
                s
                for s in family.samples
                if "collection" not in s.labels or self._covers(s.labels["collection"])
            ]
            yield seen


class Metrics:
    """Request latency per route, encode and search timings, index sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "latentspace_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.encode = Histogram(
            "latentspace_encode_seconds",
            "Time spent in one encoder call, by modality.",
            ["modality"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refused_at_door = Counter(
            "latentspace_http_refused_at_door",
            "Requests refused (503) before anything else was done for them: the server was "
            "shedding load (they have no latency sample of their own).",
            registry=self.registry,
        )
        self.search = Histogram(
            "latentspace_search_seconds",
            "Time spent in one index search, by index kind.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_indexes(self, sizes: IndexSizes) -> None:
        """Report index sizes from ``sizes`` at every scrape."""
        self.registry.register(_IndexCollector(sizes))

    def watch_expiry(self, swept: Callable[[], dict[str, int]]) -> None:
        """Report the expired items the sweep deleted, by collection, at every scrape."""
        self.registry.register(_SweptCollector(swept))

    def timing(self, what: str, label: str, seconds: float) -> None:
        """The service's timing hook: ``("encode", modality)`` or ``("search", kind)``."""
        if what == "encode":
            self.encode.labels(label).observe(seconds)
        elif what == "search":
            self.search.labels(label).observe(seconds)

    def render(self, covers: Callable[[str], bool] | None = None) -> bytes:
        """The text exposition format; with ``covers``, only the samples of the collections
        it accepts (and those of no collection)."""
        if covers is None:
            return generate_latest(self.registry)
        return generate_latest(_Seen(self.registry, covers))
