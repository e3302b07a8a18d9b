"""Prometheus metrics of one server (prometheus-client): requests and latencies by
route, searches by mode, and, read at each scrape, items, generation, index lag,
running mining jobs, and the full rebuilds (by reason) and change-log catch-ups of the
in-memory index.

Labels come from fixed sets, so no caller can make new series at will: a route is its
template (``/items/{item_id:path}``, or ``unmatched``), a method one of ``METHODS``
or ``other``. Requests refused by the token check are counted apart
(``foodvec_requests_refused_total``, no labels) and never under a route."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from .state import Service

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as a label: one of ``METHODS``, else ``other``."""
    return method if method in METHODS else "other"


class Metrics:
    def __init__(self, svc: Service):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "foodvec_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foodvec_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.searches = Counter(
            "foodvec_searches", "Queries searched, by mode", ["mode"], registry=self.registry
        )
        self.refused = Counter(
            "foodvec_requests_refused",
            "HTTP requests refused by the token check (401), any route or method",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(svc))


class _StateCollector:
    """Values read from the index when Prometheus scrapes."""

    def __init__(self, svc: Service):
        self.svc = svc

    def collect(self):
        idx = self.svc.index
        gen, _ = idx.state()
        lag = idx.index_lag()
        for name, doc, value in (
            ("foodvec_items", "Items in the index", idx.count()),
            ("foodvec_generation", "The database's generation", gen),
            ("foodvec_index_lag", "Generations the in-memory index is behind", lag),
            ("foodvec_mining_jobs_running", "Mining jobs running here", self.svc.live_jobs()),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g
        counts = idx.index_counters()
        rebuilds = CounterMetricFamily(
            "foodvec_index_rebuilds",
            "Full rebuilds of the in-memory index from the database, by reason (the first "
            "load of a home without an index included)",
            labels=["reason"],
        )
        for reason, n in sorted(counts["rebuild_reasons"].items()):
            rebuilds.add_metric([reason], float(n))
        yield rebuilds
        catchups = CounterMetricFamily(
            "foodvec_index_catchups", "Catch-ups of the in-memory index from the change log"
        )
        catchups.add_metric([], float(counts["catchups"]))
        yield catchups


class MetricsMiddleware:
    """ASGI middleware: counts each request and times it under its route's template."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if scope.get("foodvec.refused") or status["code"] == 401:
                self.metrics.refused.inc()
            else:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                method = method_label(scope.get("method", ""))
                self.metrics.requests.labels(path, method, str(status["code"])).inc()
                self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
