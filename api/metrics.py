"""Prometheus metrics (one registry per app, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("cfd_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("cfd_http_request_seconds", "HTTP request latency",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.cycle = Histogram("cfd_engine_batch_seconds",
                               "engine cycle: apply a batch of commands and commit it",
                               buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("cfd_engine_batch_commands", "commands per batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                    registry=r)
        self.commands = Counter("cfd_engine_commands", "commands applied", ["kind", "ok"],
                                registry=r)
        self.stop_outs = Counter("cfd_stop_outs", "stop-out events (accounts liquidated)",
                                 registry=r)
        self.margin_calls = Counter("cfd_margin_calls", "margin-call events", registry=r)
        self.rejected_ticks = Gauge("cfd_rejected_ticks", "ticks the engine rejected "
                                    "(NaN, crossed, non-positive, unknown symbol)", registry=r)
        self.history_staged = Gauge(
            "cfd_history_staged", "1 while a bulk booking's staged history rows wait to be "
            "written into their tables (history reads wait meanwhile)", registry=r)
        self.too_many = Counter("cfd_rate_limited", "trade requests answered 10024",
                                registry=r)
        self.writer_unavailable = Counter(
            "cfd_gateway_writer_unavailable",
            "requests a gateway answered 503 because no writer answered", registry=r)
        self.engine_errors = Counter("cfd_engine_errors", "commands that raised (bugs)",
                                     registry=r)
