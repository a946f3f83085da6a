"""Prometheus metrics for routed calls and served calls, true across every worker.

gunicorn runs several worker processes per app; a scrape must tell the whole
truth, not one worker's share. With `PROMETHEUS_MULTIPROC_DIR` set (circus.ini
sets one directory per app, and `shims.gunicorn_conf` empties it when the
master starts and marks dead workers), every worker writes its samples there
and `/metrics` aggregates them. Without it (tests, a single process), each app
keeps its own registry.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


class TurnoutMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple, object] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("turnout_calls", "Routed contract calls by side and outcome",
                             ["feature", "method", "side", "outcome"], registry=r)
        self.latency = Histogram("turnout_call_seconds", "Routed call latency by side",
                                 ["feature", "method", "side"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.shadow = Counter("turnout_shadow_comparisons",
                              "Shadow comparisons: match, mismatch, shadow_error, shadow_timeout",
                              ["feature", "method", "result"], registry=r)
        self.shadow_rechecks = Counter("turnout_shadow_rechecks",
                                       "Mismatches asked again: transient (both sides agree "
                                       "now), persistent, failed, skipped",
                                       ["feature", "method", "result"], registry=r)
        self.fallbacks = Counter("turnout_fallbacks", "Calls sent to local instead of remote",
                                 ["feature", "method", "reason"], registry=r)
        self.mirrors = Counter("turnout_mirror_writes", "Writes mirrored to the other side",
                               ["feature", "target", "outcome"], registry=r)
        self.mirror_backlog = Gauge("turnout_mirror_backlog",
                                    "Changes waiting in a side's outbox to reach the target",
                                    ["feature", "target"], registry=r,
                                    multiprocess_mode="livemax")
        self.mirror_lag = Gauge("turnout_mirror_lag_seconds",
                                "Age of the oldest change not yet mirrored to the target",
                                ["feature", "target"], registry=r, multiprocess_mode="livemax")
        self.breaker_state = Gauge("turnout_breaker_state",
                                   "Circuit breaker: 0 closed, 1 half-open, 2 open "
                                   "(worst live worker)", ["feature"], registry=r,
                                   multiprocess_mode="livemax")
        self.breaker_transitions = Counter("turnout_breaker_transitions",
                                           "Breaker state changes", ["feature", "to"], registry=r)
        self.flag_version = Gauge("turnout_flag_version",
                                  "Flag version served (lowest live worker)", registry=r,
                                  multiprocess_mode="livemin")
        self.flag_store_readable = Gauge("turnout_flag_store_readable",
                                         "1 if the flag store was read and trusted at the last "
                                         "look, 0 if not (worst live worker)", registry=r,
                                         multiprocess_mode="livemin")
        self.flag_store_problems = Counter("turnout_flag_store_problems",
                                           "Flag store problems noticed, by reason (each time "
                                           "a worker notices one)", ["reason"], registry=r)
        self.evidence_flushes = Counter("turnout_evidence_flushes",
                                        "Flushes of a worker's evidence to the shared table",
                                        ["outcome"], registry=r)
        self.guard_rollbacks = Counter("turnout_guard_rollbacks",
                                       "Features moved back one stage by the rollback guard",
                                       ["feature"], registry=r)
        self.guard_refusals = Counter("turnout_guard_refusals",
                                      "Rollbacks the guard wanted but could not make (a drain "
                                      "could not finish, the store refused); retried",
                                      ["feature"], registry=r)
        self.guard_leader = Gauge("turnout_guard_leader",
                                  "1 in the worker that holds the rollback guard's lease",
                                  registry=r, multiprocess_mode="livesum")
        self.served = Counter("turnout_served_calls", "Contract calls this service answered",
                              ["contract", "method", "outcome"], registry=r)
        self.served_latency = Histogram("turnout_served_seconds", "Latency of answered calls",
                                        ["contract", "method"], buckets=LATENCY_BUCKETS,
                                        registry=r)

    def observe_served(self, method, outcome: str, seconds: float) -> None:
        self.child(self.served, method.contract, method.name, outcome).inc()
        self.child(self.served_latency, method.contract, method.name).observe(seconds)

    def observe_call(self, labels: tuple[str, str, str], outcome: str, seconds: float) -> None:
        """A routed call: its latency by (feature, method, side), its count by outcome."""
        self.child(self.latency, *labels).observe(seconds)
        self.child(self.calls, *labels, outcome).inc()

    def child(self, metric, *labels: str):
        """`metric.labels(*labels)`, kept: prometheus_client's `labels` takes a lock and
        builds its key on every call, ~3 µs, on every routed and every served call (B1,
        B8). A labelled child lives as long as its metric, so keeping it changes nothing."""
        key = (metric, labels)
        try:
            return self._children[key]
        except KeyError:
            child = self._children[key] = metric.labels(*labels)
            return child

    def exposition(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def metrics_blueprint(metrics: TurnoutMetrics) -> Blueprint:
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get("/metrics")
    def scrape():
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    return blueprint
