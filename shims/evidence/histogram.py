"""Fixed latency buckets, so that histograms from any number of workers add up, and the
quantiles read from a merged histogram.

The bounds are part of the evidence table's schema (one column per bucket): they are
finer than Prometheus's defaults where migrations are decided (1 ms to 1 s), and a
quantile is interpolated within its bucket, as Prometheus's `histogram_quantile` does, so
it is accurate to the bucket's width, never better.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds in milliseconds; one more bucket holds everything slower than the last.
BOUNDS_MS: tuple[float, ...] = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300,
                                500, 750, 1000, 1500, 2000, 3000, 5000, 10000)
SLOTS = len(BOUNDS_MS) + 1


def slot(seconds: float) -> int:
    """The bucket a call of this duration is counted in."""
    return bisect_left(BOUNDS_MS, seconds * 1000.0)


def empty() -> list[int]:
    return [0] * SLOTS


def merge(into: list[int], counts: Sequence[int]) -> list[int]:
    for index, count in enumerate(counts):
        into[index] += count
    return into


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in milliseconds; None when nothing was counted. A
    quantile that falls in the open-ended last bucket is reported as its lower bound (the
    slowest bound there is): "at least 10 s"."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(BOUNDS_MS):
                return float(BOUNDS_MS[-1])
            lower = BOUNDS_MS[index - 1] if index else 0.0
            return lower + (BOUNDS_MS[index] - lower) * (rank - seen) / count
        seen += count
    return float(BOUNDS_MS[-1])
