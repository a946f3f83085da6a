"""Every extraction under circusd: a runner's journey with each feature in each mode, a
service killed under traffic (reads fall back, the breaker closes again), and graceful
reloads under traffic — counting failed requests."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

import gevent
import pytest
import requests
from scraped_metrics import metric, runs_breaker
from support import eventually

pytestmark = pytest.mark.integration
PASSWORD = "correct-horse-9"


@dataclass
class Traffic:
    """Runners reading in greenlets until stopped; every failed request is kept."""

    url: str
    sessions: list[requests.Session]
    paths: tuple[str, ...] = ("/api/runs", "/api/reports/monthly", "/api/me")
    failures: list[str] = field(default_factory=list)
    done: int = 0
    _stop: bool = False
    _greenlets: list = field(default_factory=list)

    def __enter__(self) -> Traffic:
        self._greenlets = [gevent.spawn(self._loop, i) for i in range(6)]
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop = True
        gevent.joinall(self._greenlets, timeout=30)

    def _loop(self, index: int) -> None:
        step = index
        while not self._stop:
            session = self.sessions[step % len(self.sessions)]
            path = self.paths[step % len(self.paths)]
            step += 1
            try:
                response = session.get(f"{self.url}{path}", timeout=15)
                if response.status_code != 200:
                    self.failures.append(f"{path} {response.status_code} {response.text[:150]}")
            except requests.RequestException as exc:
                self.failures.append(f"{path} {exc!r}")
            self.done += 1
            gevent.sleep(0.01)


def runner(url: str, strava_token: str | None = None) -> requests.Session:
    email = f"journey-{uuid.uuid4().hex[:10]}@example.com"
    created = requests.post(f"{url}/api/users", json={"email": email, "password": PASSWORD},
                            timeout=10)
    assert created.status_code == 201, created.text
    session = requests.Session()
    token = session.post(f"{url}/api/tokens", auth=(email, PASSWORD), timeout=10).json()["token"]
    session.headers["Authorization"] = f"Bearer {token}"
    if strava_token:
        linked = session.put(f"{url}/api/me/strava", json={"strava_token": strava_token},
                             timeout=10)
        assert linked.status_code == 200, linked.text
    return session


def set_flag(stack, feature: str, mode: str, *extra: str) -> None:
    stack.turnout("flags", "set", feature, mode, *extra)
    time.sleep(0.6)  # every worker looks again within 0.25 s


def route_of(response: requests.Response, method: str) -> str:
    for part in response.headers.get("X-Turnout-Route", "").split(", "):
        name, _, side = part.partition("=")
        if name == method:
            return side
    return "none"


# In migration order, then back: `local` last is the rollback (writes made in `remote`
# are then only in the service, so each step checks what it wrote itself).
MODES = ("dualwrite", "shadow", "live", "rampdown", "remote", "local")


def test_a_runners_journey_with_every_feature_in_each_mode(stack):
    url = stack.monolith
    set_flag(stack, "runs", "dualwrite")  # the documented first step: new writes on both sides
    stack.turnout("data", "copy", "runs")  # then the history
    demo = runner(url, strava_token="demo-strava-token")
    today = dt.date.today()
    for mode in MODES:
        for feature in ("runs", "strava", "reports"):
            set_flag(stack, feature, mode)
        imported = demo.post(f"{url}/api/strava/import", timeout=30)
        assert imported.status_code == 200, (mode, imported.text)
        expected_side = "local" if mode in ("local", "dualwrite", "shadow") else "remote"
        assert route_of(imported, "strava.import_user") == expected_side, mode
        added = demo.post(f"{url}/api/runs", timeout=10, json={
            "name": f"{mode} run", "distance": 5000, "elapsed_time": 1500,
            "start_date": f"{today.isoformat()}T06:00:00"})
        assert added.status_code == 201, (mode, added.text)
        runs = demo.get(f"{url}/api/runs", timeout=10)
        assert added.json()["id"] in [r["id"] for r in runs.json()["runs"]], mode
        report = demo.get(f"{url}/api/reports/monthly", timeout=10)
        assert report.status_code == 200 and route_of(report, "reports.monthly_report") \
            == expected_side, mode
        assert report.json()["run_count"] == len(runs.json()["runs"]), mode


def test_a_killed_service_is_survived_and_the_breaker_closes_when_it_is_back(stack):
    url = stack.monolith
    set_flag(stack, "runs", "dualwrite")
    sessions = [runner(url) for _ in range(4)]  # on both sides
    set_flag(stack, "runs", "rampdown")  # reads remote; the monolith still gets every write
    with Traffic(url, sessions) as traffic:
        gevent.sleep(1)
        stack.circusctl("stop", "dataservice")
        eventually(lambda: runs_breaker(url) == "open", "the runs breaker opens")
        served_while_down = traffic.done
        eventually(lambda: traffic.done >= served_while_down + 20,
                   "reads answered (from local) while the service is down")
        stack.circusctl("start", "dataservice")
        eventually(lambda: runs_breaker(url) == "closed", "the runs breaker closes again")
        gevent.sleep(1)
    assert traffic.failures == [], traffic.failures[:5]
    set_flag(stack, "runs", "local")


@pytest.mark.parametrize("watcher", ["monolith", "dataservice", "reports"])
def test_a_graceful_reload_under_traffic_fails_no_request(stack, watcher):
    url = stack.monolith
    set_flag(stack, "runs", "dualwrite")
    sessions = [runner(url) for _ in range(4)]
    set_flag(stack, "runs", "rampdown")
    set_flag(stack, "reports", "remote")
    with Traffic(url, sessions) as traffic:
        gevent.sleep(1)
        stack.circusctl("reload", watcher)
        eventually(lambda: stack.circusctl("status", watcher).strip() == "active",
                   f"{watcher} active again")
        gevent.sleep(2)
    assert traffic.done > 50
    assert traffic.failures == [], traffic.failures[:5]
    set_flag(stack, "reports", "local")
    set_flag(stack, "runs", "local")


def test_one_feature_in_shadow_while_another_is_fully_remote(stack):
    """Side by side: users and runs are served by the data service alone, while the monthly
    report is answered by the monolith's own code and compared with the reports service."""
    url = stack.monolith
    set_flag(stack, "runs", "dualwrite")
    stack.turnout("data", "copy", "runs")
    sessions = [runner(url) for _ in range(5)]
    set_flag(stack, "runs", "remote")
    set_flag(stack, "reports", "shadow")
    before = metric(url, "turnout_shadow_comparisons_total", feature="reports", result="match")
    for session in sessions:
        report = session.get(f"{url}/api/reports/monthly", timeout=10)
        assert report.status_code == 200
        assert route_of(report, "reports.monthly_report") == "local"
        assert route_of(report, "runs.list_runs") == "remote"
    eventually(lambda: metric(url, "turnout_shadow_comparisons_total", feature="reports",
                              result="match") >= before + len(sessions),
               "every report compared with the reports service, and matching")
    assert metric(url, "turnout_shadow_comparisons_total", feature="reports",
                  result="mismatch") == 0
    set_flag(stack, "reports", "local")
    set_flag(stack, "runs", "local")
