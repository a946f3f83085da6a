"""Whether a feature may advance: its gates, judged on the evidence of a window.

Only the gates whose evidence the current stage produces apply:

- `shadow_comparisons` (in shadow and live, which shadow reads): at least
  `min_comparisons` comparisons;
- `shadow_mismatch_rate` (the same): persistent mismatches / comparisons at most
  `max_mismatch_rate`;
- `remote_calls` (in shadow, canary, live and rampdown, which call the service): at least
  `min_calls` remote calls;
- `remote_error_rate` (the same): remote errors / remote calls at most `max_error_rate`;
- `remote_p99` (in shadow, canary and live, where both sides answer): remote p99 at most
  `max_p99_ratio` x local p99;
- `mirror_backlog.<side>` (every stage but local, for a feature that owns data): in each
  direction the stage drains, at most `max_mirror_backlog` changes waiting, the oldest
  at most `max_mirror_lag` seconds old.

So `local -> dualwrite` has none (nothing remote answers yet; the move itself drains the
mirror). A gate with too little evidence fails, saying so: no evidence is not good evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shims.errors import ContractError
from shims.evidence.model import FeatureEvidence
from shims.flags.model import Flag, describe_flag
from shims.gates.config import GateSettings
from shims.mirror import active_targets
from shims.sync import Backlog

SHADOWING = frozenset({"shadow", "live"})
CALLING_REMOTE = frozenset({"shadow", "canary", "live", "rampdown"})
BOTH_ANSWER = frozenset({"shadow", "canary", "live"})


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    observed: float | None  # None: no evidence to measure it on
    limit: float
    detail: str  # one line, with the numbers

    def line(self) -> str:
        return f"{self.gate}: {self.detail}"


@dataclass(frozen=True)
class Verdict:
    feature: str
    current: str
    target: str
    window_seconds: int
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(result for result in self.results if not result.passed)


class GatesFailed(ContractError):
    """An advance its gates refused; `verdict` has every gate, the failed ones first."""

    status = 422
    code = "gates_failed"

    def __init__(self, verdict: Verdict):
        failed = verdict.failed
        super().__init__(f"{verdict.feature}: {verdict.current} -> {verdict.target} refused by "
                         f"{len(failed)} gate{'s' if len(failed) != 1 else ''} over the last "
                         f"{verdict.window_seconds}s: " + "; ".join(r.line() for r in failed))
        self.verdict = verdict

    def to_dict(self) -> dict:
        return {**super().to_dict(), "feature": self.verdict.feature,
                "from": self.verdict.current, "to": self.verdict.target,
                "window_seconds": self.verdict.window_seconds,
                "failed": [_result(r) for r in self.verdict.failed],
                "gates": [_result(r) for r in self.verdict.results]}


def _result(result: GateResult) -> dict:
    return {"gate": result.gate, "passed": result.passed, "observed": result.observed,
            "limit": result.limit, "detail": result.detail}


def judge(current: Flag, target: Flag, evidence: FeatureEvidence, gates: GateSettings, *,
          owns_data: bool, backlogs: Mapping[str, Backlog | Exception] | None = None) -> Verdict:
    """Every gate that applies to moving from `current` to `target`. `backlogs`: each
    mirror direction's backlog as read now (or the error reading it), by target side."""
    mode = current.mode
    results: list[GateResult] = []
    if mode in SHADOWING:
        results += shadow_gates(evidence, gates)
    if mode in CALLING_REMOTE:
        results += remote_gates(evidence, gates)
    if mode in BOTH_ANSWER:
        results.append(latency_gate(evidence, gates))
    if owns_data and mode != "local":
        results += mirror_gates(mode, backlogs or {}, gates)
    return Verdict(feature=current.feature, current=describe_flag(current),
                   target=describe_flag(target), window_seconds=evidence.window_seconds,
                   results=tuple(results))


def shadow_gates(evidence: FeatureEvidence, gates: GateSettings) -> list[GateResult]:
    shadow = evidence.shadow
    enough = GateResult("shadow_comparisons", shadow.compared >= gates.min_comparisons,
                        shadow.compared, gates.min_comparisons,
                        f"{shadow.compared} shadow comparisons; at least "
                        f"{gates.min_comparisons} needed")
    rate = shadow.mismatch_rate
    detail = (f"{_percent(rate)} of {shadow.compared} comparisons mismatched persistently "
              f"({shadow.persistent}; {shadow.transient} more were transient); at most "
              f"{_percent(gates.max_mismatch_rate)} allowed" if rate is not None else
              "no shadow comparison in the window")
    mismatches = GateResult("shadow_mismatch_rate",
                            rate is not None and rate <= gates.max_mismatch_rate, rate,
                            gates.max_mismatch_rate, detail)
    return [enough, mismatches]


def remote_gates(evidence: FeatureEvidence, gates: GateSettings) -> list[GateResult]:
    remote = evidence.remote
    enough = GateResult("remote_calls", remote.calls >= gates.min_calls, remote.calls,
                        gates.min_calls,
                        f"{remote.calls} remote calls; at least {gates.min_calls} needed")
    rate = remote.error_rate
    detail = (f"{_percent(rate)} of {remote.calls} remote calls failed ({remote.errors}); at "
              f"most {_percent(gates.max_error_rate)} allowed" if rate is not None else
              "no remote call in the window")
    errors = GateResult("remote_error_rate", rate is not None and rate <= gates.max_error_rate,
                        rate, gates.max_error_rate, detail)
    return [enough, errors]


def latency_gate(evidence: FeatureEvidence, gates: GateSettings) -> GateResult:
    remote, local = evidence.remote.p99_ms, evidence.local.p99_ms
    if remote is None or local is None:
        missing = "remote" if remote is None else "local"
        return GateResult("remote_p99", False, None, gates.max_p99_ratio,
                          f"no {missing} call in the window to measure p99 on")
    ratio = remote / max(local, 0.001)  # a quantile of counted calls is never 0
    return GateResult("remote_p99", ratio <= gates.max_p99_ratio, round(ratio, 3),
                      gates.max_p99_ratio,
                      f"remote p99 {remote:.1f} ms is {ratio:.2f}x local p99 {local:.1f} ms; at "
                      f"most {gates.max_p99_ratio:g}x allowed")


def mirror_gates(mode: str, backlogs: Mapping[str, Backlog | Exception],
                 gates: GateSettings) -> list[GateResult]:
    results = []
    for target in active_targets(mode):
        name = f"mirror_backlog.{target}"
        found = backlogs.get(target)
        if not isinstance(found, Backlog):
            why = f"could not be read ({found})" if found is not None else "was not read"
            results.append(GateResult(name, False, None, gates.max_mirror_backlog,
                                      f"the backlog to the {target} side {why}"))
            continue
        passed = found.entries <= gates.max_mirror_backlog and (
            found.entries == 0 or found.oldest_seconds <= gates.max_mirror_lag)
        results.append(GateResult(
            name, passed, found.entries, gates.max_mirror_backlog,
            f"{found.entries} changes wait to reach the {target} side, the oldest "
            f"{found.oldest_seconds:.1f}s; at most {gates.max_mirror_backlog} and "
            f"{gates.max_mirror_lag:g}s allowed"))
    return results


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.2f}%"
