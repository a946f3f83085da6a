"""Small inline SVG line charts: a series of numbers per line, scaled into a fixed box.
Only coordinates are computed here; the template draws them (presentation attributes and
classes, never `style=`, so a strict Content-Security-Policy allows them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 300, 80, 4


@dataclass(frozen=True)
class Line:
    name: str  # also its CSS class: local, remote, errors
    points: str  # "x,y x,y ..." for <polyline points>; gaps (None) are skipped
    last: float | None


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    top: float  # the value at the top of the box
    lines: tuple[Line, ...]
    width: int = WIDTH
    height: int = HEIGHT


def chart(title: str, unit: str, series: dict[str, Sequence[float | None]]) -> Chart:
    values = [v for line in series.values() for v in line if v is not None]
    top = _nice(max(values, default=0.0))
    return Chart(title, unit, top, tuple(
        Line(name, _points(line, top), next((v for v in reversed(line) if v is not None), None))
        for name, line in series.items()))


def _points(line: Sequence[float | None], top: float) -> str:
    steps = max(1, len(line) - 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    return " ".join(f"{PAD + inner_w * i / steps:.1f},{PAD + inner_h * (1 - v / top):.1f}"
                    for i, v in enumerate(line) if v is not None)


def _nice(peak: float) -> float:
    """A round top above the peak (1, 2 or 5 times a power of ten), so axes read easily."""
    if peak <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= peak:
        scale *= 10
    while scale > peak:
        scale /= 10
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= peak)
