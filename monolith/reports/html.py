"""HTML pages for reports: the monthly report with an inline SVG bar chart of distance per day.

The chart's geometry is computed here, in plain Python, so the template only
places shapes: no JavaScript and no charting library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from monolith.runs.html import month_nav
from monolith.web import requested_month
from monolith.wiring import features
from contracts.reports import DayDistance

bp = Blueprint("reports_html", __name__)

# Chart canvas and the margins that leave room for the axis labels.
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 32
X_LABEL_DAYS = (1, 5, 10, 15, 20, 25)  # and the month's last day


@dataclass(frozen=True)
class Bar:
    day: int
    km: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: float  # y of the x axis
    right: float  # x where the plot ends
    bars: tuple[Bar, ...]
    y_ticks: tuple[tuple[float, float], ...]  # (km, y)
    x_labels: tuple[tuple[int, float], ...]  # (day, x of the bar's centre)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above value, so ticks are round."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def distance_chart(per_day: tuple[DayDistance, ...]) -> Chart:
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_km = nice_ceiling(max((day.distance for day in per_day), default=0) / 1000)
    slot = plot_width / max(len(per_day), 1)
    axis_y = TOP + plot_height
    bars = []
    for index, day in enumerate(per_day):
        km = day.distance / 1000
        height = plot_height * km / top_km
        x = LEFT + index * slot + slot * 0.15  # a gap of 15% of the slot on each side
        bars.append(Bar(day=day.day, km=round(km, 2), x=round(x, 1), y=round(axis_y - height, 1),
                        width=round(slot * 0.7, 1), height=round(height, 1)))
    ticks = tuple((round(top_km * share, 2), round(axis_y - plot_height * share, 1))
                  for share in (0, 0.5, 1))
    labels = tuple((bar.day, round(bar.x + bar.width / 2, 1)) for bar in bars
                   if bar.day in X_LABEL_DAYS or bar.day == len(bars))
    return Chart(width=WIDTH, height=HEIGHT, left=LEFT, top=TOP, bottom=axis_y,
                 right=WIDTH - RIGHT, bars=tuple(bars), y_ticks=ticks, x_labels=labels)


@bp.get("/reports")
@login_required
def monthly():
    year, month = requested_month(request.args)
    report = features().reports.monthly_report(current_user.id, year, month)
    return render_template("reports/monthly.html", report=report,
                           chart=distance_chart(report.per_day), nav=month_nav(year, month))
