"""HTML monthly report: the figures, the inline SVG chart, month navigation, bad months."""

import datetime as dt
import re

import pytest

from monolith.reports.html import distance_chart, nice_ceiling
from monolith.wiring import features
from contracts.reports import DayDistance
from contracts.runs import RunInput
from tests.conftest import PASSWORD


def login(web, user):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    form.submit()


@pytest.fixture
def runner(web, make_user):
    user = make_user()
    login(web, user)
    return user


def add_run(user, day, distance, elapsed, heartrate=None, month=11):
    features().runs.add_run(user.id, RunInput(
        name=f"day {day}", distance=distance, start_date=dt.datetime(2026, month, day, 7, 0),
        elapsed_time=elapsed, average_heartrate=heartrate))


def bars(html):
    return re.findall(r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+" '
                      r'height="([\d.]+)">\s*<title>([^<]*)</title>', html)


def stat(html, name):
    return re.search(rf'<dd id="{name}">([^<]*)</dd>', html).group(1).strip()


def test_report_figures_and_chart(web, runner):
    add_run(runner, 2, 10000.0, 3000, heartrate=150.0)
    add_run(runner, 2, 2000.0, 600)
    add_run(runner, 20, 5000.0, 1800, heartrate=160.0)
    add_run(runner, 1, 42195.0, 12000, month=10)  # another month: not counted
    res = web.get("/reports?year=2026&month=11")
    assert "November 2026" in res.text
    assert stat(res.text, "run-count") == "3"
    assert stat(res.text, "total-distance") == "17.00 km"
    assert stat(res.text, "longest-distance") == "10.00 km"
    assert stat(res.text, "average-pace") == "5:18 min/km"  # 5400 s over 17 km
    assert stat(res.text, "average-heartrate") == "154 bpm"  # weighted by time
    found = bars(res.text)
    assert len(found) == 30  # one bar per day of November
    assert found[1][1] == "2 November 2026: 12.00 km"
    assert found[19][1] == "20 November 2026: 5.00 km"
    assert found[0] == ("0.0", "1 November 2026: 0.00 km")
    heights = [float(height) for height, _ in found]
    assert max(heights) == heights[1] > heights[19] > 0


def test_chart_has_axis_labels_and_no_script(web, runner):
    add_run(runner, 2, 12000.0, 3600)
    res = web.get("/reports?year=2026&month=11")
    svg = res.text[res.text.index("<svg"):res.text.index("</svg>")]
    assert "Kilometres run per day in November 2026" in svg
    assert ">day of month</text>" in svg and ">km</text>" in svg
    for day in ("1", "5", "10", "15", "20", "25", "30"):
        assert f'text-anchor="middle">{day}</text>' in svg
    for tick in ("0", "10", "20"):  # 12 km rounds the axis up to 20 km
        assert f'text-anchor="end">{tick}</text>' in svg
    assert "<script" not in res.text.lower()


def test_empty_month(web, runner):
    res = web.get("/reports?year=2028&month=2")
    assert stat(res.text, "run-count") == "0"
    assert stat(res.text, "total-distance") == "0.00 km"
    assert stat(res.text, "average-pace") == "\N{EN DASH}"
    assert stat(res.text, "average-heartrate") == "\N{EN DASH}"
    assert len(bars(res.text)) == 29  # a leap February


def test_report_defaults_to_the_current_month_and_links_months(web, runner):
    today = dt.date.today()
    assert f"{today:%B} {today.year}" in web.get("/reports").text
    res = web.get("/reports?year=2026&month=1")
    assert 'href="/reports?year=2025&amp;month=12"' in res.text
    assert 'href="/reports?year=2026&amp;month=2"' in res.text
    res = web.get("/reports?year=2100&month=12")
    assert 'rel="next"' not in res.text  # 2101 is outside the accepted range


def test_report_is_the_runners_own(web, runner, make_user):
    add_run(make_user(), 3, 8000.0, 2400)
    res = web.get("/reports?year=2026&month=11")
    assert stat(res.text, "run-count") == "0"


@pytest.mark.parametrize(("query", "message"), [
    ("year=2026&month=13", "month must be at most 12"),
    ("year=2026&month=", "month is required"),
    ("year=abc&month=2", "year must be an integer"),
    ("year=2026&month=two", "month must be an integer"),
    ("year=2200&month=2", "year must be at most 2100"),
])
def test_bad_month_is_a_400_page(web, runner, query, message):
    res = web.get(f"/reports?{query}", status=400)
    assert message in res.text


def test_reports_need_login(web):
    assert "/login" in web.get("/reports").location


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.2, 3, 7.5, 12, 42.195)] == [
        1.0, 0.5, 1, 2, 5, 10, 20, 50]


def test_chart_geometry_stays_inside_the_plot():
    days = tuple(DayDistance(day=d, distance=20000.0 * d / 31) for d in range(1, 32))
    chart = distance_chart(days)
    assert len(chart.bars) == 31
    assert chart.bars[-1].y == chart.top  # 20 km on the last day fills the 0-20 km axis
    assert [km for km, _ in chart.y_ticks] == [0, 10, 20]
    for bar in chart.bars:
        assert chart.left <= bar.x and bar.x + bar.width <= chart.right
        assert bar.y + bar.height == pytest.approx(chart.bottom, abs=0.2)
    assert [day for day, _ in chart.x_labels] == [1, 5, 10, 15, 20, 25, 31]
