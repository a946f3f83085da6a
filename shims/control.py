"""One process's side of Turnout: its flags, breakers, metrics, mismatch log, appliers,
evidence and rollback guard.

Built once per process by the composition root (shims/extension.py) and shared by every
router of that process; the `turnout` command builds the same store from the same
settings, so both always read one set of flags. The guard's switches live in the flag store's
database (a companion: a store started afresh holds them too); the evidence and the
guard's lease, written every few seconds, in the evidence database (shims/evidence/store.py:
the flag store's own on PostgreSQL, a file beside a SQLite one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from shims.breaker import CircuitBreaker
from shims.evidence.config import EvidenceConfig
from shims.evidence.flusher import EvidenceFlusher
from shims.evidence.reader import Evidence
from shims.evidence.recorder import EvidenceRecorder
from shims.evidence.store import SqlEvidenceStore, evidence_engine, evidence_url
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo
from shims.flags.problems import FlagStoreError
from shims.flags.store import SqlFlagStore
from shims.gates.config import Policy, policy_for
from shims.guard.switches import GuardSwitches
from shims.guard.switches import metadata as guard_tables
from shims.logs import event
from shims.metrics import TurnoutMetrics
from shims.mirror import Channel, Lease, MirrorApplier
from shims.mismatches import SqlMismatchLog
from shims.mismatches import metadata as mismatch_tables
from shims.router import make_breaker
from shims.sync import Backlog

log = logging.getLogger("turnout.flags")
# Everything the kit keeps in the flag store's database beside the flags.
COMPANIONS = (mismatch_tables, guard_tables)


@dataclass(frozen=True)
class Control:
    """This process's side of Turnout: flags, breakers, metrics, mismatches."""

    store: SqlFlagStore
    flags: FlagCache
    metrics: TurnoutMetrics
    breakers: dict[str, CircuitBreaker]
    mismatches: SqlMismatchLog
    recorder: EvidenceRecorder
    evidence_store: SqlEvidenceStore
    evidence: Evidence
    flusher: EvidenceFlusher
    evidence_config: EvidenceConfig
    policy: Policy
    switches: GuardSwitches
    # One per feature that owns data; started in each server worker (start_appliers).
    appliers: list[MirrorApplier] = field(default_factory=list)
    # The rollback guard, once the composition root has the features' mirror channels.
    guards: list[Any] = field(default_factory=list)

    @property
    def features(self) -> Mapping[str, FeatureInfo]:
        return self.store.features


def build_control(settings: Mapping[str, Any], features: Mapping[str, FeatureInfo]) -> Control:
    store = SqlFlagStore.from_url(settings["FLAGS_URL"], dict(features), companions=COMPANIONS)
    mismatches = SqlMismatchLog(store.engine)
    evidence_store = SqlEvidenceStore(evidence_engine(
        evidence_url(settings["FLAGS_URL"], settings.get("EVIDENCE_URL"))))
    project = settings.get("PROJECT")  # settings made before the policy existed lack it
    policy = policy_for(project)
    evidence_config = EvidenceConfig.from_settings(settings)
    policy.require_features(features, project or "the policy")
    policy.require_windows(evidence_config.bucket_seconds, evidence_config.keep_seconds,
                           project or "the policy")
    try:
        store.open()
        mismatches.create_schema()
    except (FlagStoreError, SQLAlchemyError) as problem:
        # A worker starting while the store is damaged still serves (every feature local
        # until the store can be read, as the cache does before any read) rather than fail
        # to boot, which would make gunicorn stop the whole app. Its cache says the rest.
        event(log, "flag_store_unreadable", logging.ERROR,
              reason=getattr(problem, "reason", "error"),
              error=getattr(problem, "message", str(problem)), serving_version=None,
              at="start-up")
    metrics = TurnoutMetrics()
    breakers = {name: make_breaker(name, metrics, failure_threshold=settings["BREAKER_FAILURES"],
                                   reset_timeout=settings["BREAKER_RESET_SECONDS"])
                for name, info in features.items() if info.has_remote}
    flags = FlagCache(store, refresh_interval=settings["FLAGS_REFRESH"], metrics=metrics)
    recorder = EvidenceRecorder(evidence_config.bucket_seconds,
                                keep_seconds=evidence_config.keep_seconds)
    flusher = EvidenceFlusher(recorder, evidence_store, interval=evidence_config.flush_seconds,
                              keep_seconds=evidence_config.keep_seconds, breakers=breakers,
                              metrics=metrics)
    return Control(store=store, flags=flags, metrics=metrics, breakers=breakers,
                   mismatches=mismatches, recorder=recorder, evidence_store=evidence_store,
                   evidence=Evidence(evidence_store, features,
                                     bucket_seconds=evidence_config.bucket_seconds),
                   flusher=flusher, evidence_config=evidence_config, policy=policy,
                   switches=GuardSwitches(store, policy))


def serving_flags(control: Control) -> dict[str, Any]:
    """The flags this worker serves right now, for /healthz (and the multi-worker tests):
    `version` is what it serves, `store_version` what it last read from the store (older
    after a restore from a backup), `store_problem` what is wrong and what to run."""
    snapshot = control.flags.snapshot()
    health = control.flags.health
    return {"flags": {"version": snapshot.version, "killed": snapshot.killed,
                      "modes": {name: snapshot.flag(name).mode for name in control.features},
                      "store_readable": health.readable, "store_problem": health.problem,
                      "store_version": health.store_version}}


def add_applier(control: Control, feature: str, channels: dict[str, Channel], engine: Engine,
                interval: float) -> None:
    """The feature's mirror applier; its lease lives in the monolith's database, next to
    the outbox it drains."""
    metrics = control.metrics

    def report(name: str, target: str, backlog: Backlog) -> None:
        metrics.mirror_backlog.labels(name, target).set(backlog.entries)
        metrics.mirror_lag.labels(name, target).set(backlog.oldest_seconds)
        control.recorder.mirror_backlog(name, target, backlog.entries, backlog.oldest_seconds)

    lease = Lease(engine, f"mirror:{feature}")
    lease.create_schema()

    def stage() -> tuple[str, bool]:
        snapshot = control.flags.snapshot()
        return snapshot.flag(feature).mode, snapshot.killed

    control.appliers.append(MirrorApplier(feature, channels, stage, lease, report=report,
                                          interval=interval))


def start_appliers(control: Control) -> None:
    """Server workers only (their wsgi module): the mirror appliers, the evidence flusher
    and the rollback guard. Tests and CLIs drain, flush and tick when they choose."""
    for applier in control.appliers:
        applier.start()
    control.flusher.start()
    for guard in control.guards:
        guard.start()
