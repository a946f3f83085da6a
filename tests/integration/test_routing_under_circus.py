"""The switch, for real: the runs feature moves to the data service and back under circusd,
stage by stage, while runners keep reading and writing, with no restart and no failed request."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import gevent
import pytest
import requests
from scraped_metrics import metric
from support import api_id, eventually

from scripts.demo_data import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.integration
RUNNERS = 40
ROUTE_HEADER = "X-Turnout-Route"


@dataclass
class Runner:
    email: str
    session: requests.Session

    def route(self, url: str) -> str:
        response = self.session.get(f"{url}/api/runs", timeout=10)
        assert response.status_code == 200, response.text
        return response.headers[ROUTE_HEADER]


@dataclass
class Load:
    """Runners reading and writing in greenlets until stopped; every failure is kept."""

    url: str
    runners: list[Runner]
    failures: list[str] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    requests_made: int = 0
    _stop: bool = False

    def start(self, greenlets: int = 8) -> list[gevent.Greenlet]:
        return [gevent.spawn(self._loop, index) for index in range(greenlets)]

    def _loop(self, index: int) -> None:
        step = 0
        while not self._stop:
            runner = self.runners[(index + step * 8) % len(self.runners)]
            step += 1
            try:
                if step % 4 == 0:
                    response = runner.session.post(f"{self.url}/api/runs", timeout=10, json={
                        "name": f"load {step}", "distance": 5000, "elapsed_time": 1500,
                        "start_date": "2026-11-20T07:00:00"})
                    if response.status_code == 201:
                        self.acknowledged.append(api_id(response.json()["id"]))
                else:
                    response = runner.session.get(f"{self.url}/api/runs",
                                                  params={"year": 2026, "month": 11}, timeout=10)
                if response.status_code >= 400:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.requests_made += 1
            gevent.sleep(0.005)

    def stop(self, greenlets: list[gevent.Greenlet]) -> None:
        self._stop = True
        gevent.joinall(greenlets, timeout=20)


def _sign_up_runners(url: str) -> list[Runner]:
    runners = []
    for _ in range(RUNNERS):
        email = f"runner-{uuid.uuid4().hex[:10]}@example.com"
        created = requests.post(f"{url}/api/users", timeout=10,
                                json={"email": email, "password": "correct-horse-9"})
        assert created.status_code == 201, created.text
        session = requests.Session()
        token = session.post(f"{url}/api/tokens", auth=(email, "correct-horse-9"),
                             timeout=10).json()["token"]
        session.headers["Authorization"] = f"Bearer {token}"
        runners.append(Runner(email=email, session=session))
    return runners


def _set(stack, mode: str, *extra: str) -> None:
    stack.turnout("flags", "set", "runs", mode, *extra)
    time.sleep(0.6)  # the workers' caches look again every 0.25 s; see the multi-worker test


def test_runs_move_to_the_data_service_and_back_without_a_failed_request(stack):
    monolith, service = stack.monolith, stack.url("TURNOUT_DATASERVICE_PORT")
    _set(stack, "dualwrite")  # from now on every write is mirrored to the data service...
    assert stack.turnout("data", "copy", "runs").returncode == 0  # ...and history is copied
    runners = _sign_up_runners(monolith)
    load = Load(monolith, runners)
    greenlets = load.start()

    _set(stack, "shadow")
    eventually(lambda: metric(monolith, "turnout_shadow_comparisons_total",
                               result="match") > 0, "shadow comparisons that match")

    _set(stack, "canary", "--percent", "30")
    first = {r.email: r.route(monolith) for r in runners}
    assert all(r.route(monolith) == first[r.email] for r in runners), "canary is not sticky"
    remote_at_30 = {email for email, route in first.items() if "=remote" in route}
    assert 0 < len(remote_at_30) < RUNNERS, first
    _set(stack, "canary", "--percent", "60")
    remote_at_60 = {r.email for r in runners if "=remote" in r.route(monolith)}
    assert remote_at_30 <= remote_at_60, "raising the percentage moved a runner back to local"

    _set(stack, "live")
    served_before = metric(service, "turnout_served_calls_total", method="list_runs")
    assert all("runs.list_runs=remote" in r.route(monolith) for r in runners)
    assert metric(service, "turnout_served_calls_total", method="list_runs") >= \
        served_before + RUNNERS, "the data service's /metrics must show the calls"

    _set(stack, "rampdown")
    load.stop(greenlets)
    verified = stack.turnout("data", "verify", "runs", check=False)
    assert verified.returncode == 0, f"dual writes left the two sides different:\n{verified.stdout}"
    greenlets = load.start()

    _set(stack, "remote")
    browser = _logged_in_browser(monolith)
    page = browser.get(f"{monolith}/runs", timeout=10)
    assert page.status_code == 200 and "runs.list_runs=remote" in page.headers[ROUTE_HEADER]

    stack.turnout("flags", "kill")
    time.sleep(0.6)
    assert all(r.route(monolith).endswith("=local") for r in runners[:10])
    stack.turnout("flags", "unkill")
    load.stop(greenlets)

    assert load.requests_made > 200
    assert load.failures == [], load.failures[:5]
    assert load.acknowledged, "the load wrote runs"


def _logged_in_browser(url: str) -> requests.Session:
    import re

    browser = requests.Session()
    form = browser.get(f"{url}/login", timeout=10).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    browser.post(f"{url}/login", timeout=10,
                 data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf})
    return browser
