"""Rows merged into figures: sums across workers and buckets, rates, and quantiles read
from the merged latency histogram (never an average of per-worker quantiles, which means
nothing)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from shims.evidence import histogram
from shims.evidence.model import (BREAKER_NAMES, LOCAL, REMOTE, BreakerFigures, CallRow,
                                  CountRow, FeatureEvidence, MethodFigures, MirrorFigures, Rows,
                                  ShadowFigures, SideFigures)

COMPARED = ("match", "mismatch")
SKIPPED_PREFIX = "skipped_"
DEFERRED = ("deferred", "deferred_breaker_open")


def summarize(feature: str, rows: Rows, *, since: int, until: int,
              window_seconds: int) -> FeatureEvidence:
    """One feature's figures from the rows of its window (rows of other features are
    ignored)."""
    calls = [row for row in rows.calls if row.feature == feature]
    counts = [row for row in rows.counts if row.feature == feature]
    return FeatureEvidence(
        feature=feature, window_seconds=window_seconds, since=since, until=until,
        local=side_figures(LOCAL, calls), remote=side_figures(REMOTE, calls),
        methods=method_figures(calls), shadow=shadow_figures(counts),
        breaker=breaker_figures(counts), fallbacks=fallbacks(counts),
        mirror=mirror_figures(counts))


def side_figures(side: str, rows: Iterable[CallRow]) -> SideFigures:
    mine = [row for row in rows if row.side == side]
    calls = sum(row.calls for row in mine)
    if not calls:
        return SideFigures(side)
    errors = sum(row.errors for row in mine)
    merged = histogram.empty()
    for row in mine:
        histogram.merge(merged, row.histogram)
    return SideFigures(side, calls=calls, errors=errors, error_rate=errors / calls,
                       p50_ms=_rounded(histogram.quantile(merged, 0.5)),
                       p99_ms=_rounded(histogram.quantile(merged, 0.99)),
                       mean_ms=_rounded(1000.0 * sum(row.seconds for row in mine) / calls))


def method_figures(rows: list[CallRow]) -> tuple[MethodFigures, ...]:
    by_method: dict[str, list[CallRow]] = defaultdict(list)
    for row in rows:
        by_method[row.method].append(row)
    return tuple(MethodFigures(method, side_figures(LOCAL, mine), side_figures(REMOTE, mine))
                 for method, mine in sorted(by_method.items()))


def shadow_figures(counts: list[CountRow]) -> ShadowFigures:
    results = _sums(counts, "shadow.")
    matches, mismatches = results.get("match", 0), results.get("mismatch", 0)
    compared = matches + mismatches
    transient = min(results.get("recheck_transient", 0), mismatches)
    persistent = mismatches - transient
    return ShadowFigures(
        compared=compared, matches=matches, mismatches=mismatches, transient=transient,
        persistent=persistent, errors=results.get("shadow_error", 0),
        timeouts=results.get("shadow_timeout", 0),
        skipped=sum(n for name, n in results.items() if name.startswith(SKIPPED_PREFIX)),
        match_rate=matches / compared if compared else None,
        mismatch_rate=persistent / compared if compared else None)


def breaker_figures(counts: list[CountRow]) -> BreakerFigures:
    worst = [row for row in counts if row.name == "breaker.worst"]
    if not worst:
        return BreakerFigures()
    newest = max(row.bucket for row in worst)
    samples = _sums(counts, "breaker.")
    taken = samples.get("samples", 0)
    return BreakerFigures(
        worst=BREAKER_NAMES[int(max(row.peak for row in worst))],
        now=BREAKER_NAMES[int(max(row.peak for row in worst if row.bucket == newest))],
        open_share=samples.get("not_closed", 0) / taken if taken else None)


def fallbacks(counts: list[CountRow]) -> dict[str, int]:
    return dict(sorted(_sums(counts, "fallback.").items()))


def mirror_figures(counts: list[CountRow]) -> tuple[MirrorFigures, ...]:
    writes = _sums(counts, "mirror.")
    targets = sorted({name.split(".", 1)[0] for name in writes} |
                     {row.name.split(".", 1)[1] for row in counts
                      if row.name.startswith(("backlog.", "lag."))})
    return tuple(MirrorFigures(
        target=target, pushed=writes.get(f"{target}.ok", 0),
        deferred=sum(writes.get(f"{target}.{outcome}", 0) for outcome in DEFERRED),
        backlog=_as_int(_newest_peak(counts, f"backlog.{target}")),
        backlog_peak=_as_int(_highest_peak(counts, f"backlog.{target}")),
        lag_seconds=_newest_peak(counts, f"lag.{target}")) for target in targets)


def _sums(counts: Iterable[CountRow], prefix: str) -> dict[str, int]:
    found: dict[str, int] = defaultdict(int)
    for row in counts:
        if row.name.startswith(prefix):
            found[row.name[len(prefix):]] += row.count
    return found


def _newest_peak(counts: list[CountRow], name: str) -> float | None:
    mine = [row for row in counts if row.name == name]
    if not mine:
        return None
    newest = max(row.bucket for row in mine)
    return max(row.peak for row in mine if row.bucket == newest)


def _highest_peak(counts: list[CountRow], name: str) -> float | None:
    return max((row.peak for row in counts if row.name == name), default=None)


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
