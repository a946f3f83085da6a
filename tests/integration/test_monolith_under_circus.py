"""The whole foundation for real: circusd, gunicorn gevent workers, HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import os
import re
import time

import pytest
import requests

from scripts.demo_data import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.integration


def test_every_process_is_healthy_under_circus(stack):
    status = stack.turnout("status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "monolith: active" in status.stdout
    assert "stravadev: active" in status.stdout
    assert requests.get(f"{stack.monolith}/healthz", timeout=5).json()["status"] == "ok"
    assert requests.get(f"{stack.url('TURNOUT_STRAVA_PORT')}/healthz", timeout=5).ok


def test_login_import_from_strava_and_read_the_report(stack):
    api = requests.Session()
    token = api.post(f"{stack.monolith}/api/tokens", auth=(DEMO_EMAIL, DEMO_PASSWORD),
                     timeout=5).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"

    first = api.post(f"{stack.monolith}/api/strava/import", timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["created"] > 0
    again = api.post(f"{stack.monolith}/api/strava/import", timeout=30).json()
    assert again["created"] == 0, "a second import must de-duplicate by Strava id"

    today = dt.date.today()
    report = api.get(f"{stack.monolith}/api/reports/monthly",
                     params={"year": today.year, "month": today.month}, timeout=5).json()
    runs = api.get(f"{stack.monolith}/api/runs",
                   params={"year": today.year, "month": today.month}, timeout=5).json()["runs"]
    assert report["run_count"] == len(runs) > 0
    assert report["total_distance"] == pytest.approx(sum(r["distance"] for r in runs), abs=1)


def test_browser_login_shows_the_runs_page(stack):
    browser = requests.Session()
    page = browser.get(f"{stack.monolith}/login", timeout=5)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = browser.post(f"{stack.monolith}/login", timeout=5, data={
        "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf})
    assert response.status_code == 200
    assert DEMO_EMAIL in response.text or "Demo" in response.text


def test_down_stops_every_process(stack):
    pid = stack.circusd_pid()
    assert pid is not None
    stack.turnout("down")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.monolith}/healthz", timeout=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
