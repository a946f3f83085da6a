"""The Reports contract: the very same assertions against every side.

- `local`: LocalReports over LocalRuns on a fresh SQLite file.
- `wsgi-dataservice`: RemoteReports -> the reports app in this process, whose Runs calls go
  to the data service app in this process (no sockets).
- `wsgi-monolith`: the same, but the Runs calls go to the monolith's routed `/rpc`, the
  reports service's default deployment.
- `http`: RemoteReports -> the reports service under gunicorn, whose Runs calls go to the
  data service under gunicorn. Both are shared by this module's tests, so each test makes
  its own runners (unique emails).

These fixtures are this module's own; they share nothing with tests/contract/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gunicorn_processes import Server, fail_if_dead, free_ports, launch, stop, wait_healthy

from extracted.reports.app import create_app as create_reports
from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.reports.service import LocalReports
from monolith.runs.service import LocalRuns
from contracts.accounts import Profile, RemoteAccounts, SignUp, UserRecord
from contracts.reports import DayDistance, MonthlyReport, RemoteReports
from contracts.runs import RemoteRuns, RunInput
from shims.errors import NotFound, ValidationError
from shims.transport import HttpTransport, WsgiTransport

from support import SessionTokens, dealer_setup
from tests.contract.support import FAST_HASH, PASSWORD, in_process_side

SIDES = ("local", "wsgi-dataservice", "wsgi-monolith", "http")
UNKNOWN_USER = 4_242_424_242


@dataclass
class ReportsSide:
    name: str
    accounts: Any
    runs: Any
    reports: Any  # the Reports under test
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def runner(self) -> UserRecord:
        """A new runner with an email no other test uses."""
        return self.accounts.sign_up(SignUp(email=f"reports-{uuid.uuid4().hex[:12]}@example.com",
                                            password=PASSWORD, profile=Profile()))

    def add(self, user_id: int, start: dt.datetime, distance: float, elapsed: int,
            heartrate: float | None = None) -> None:
        self.runs.add_run(user_id, RunInput(name="Run", distance=distance, start_date=start,
                                            elapsed_time=elapsed, average_heartrate=heartrate))


# --- the sides -----------------------------------------------------------------------------

def _local_side(tmp_path: Path) -> ReportsSide:
    engine = make_engine(f"sqlite:///{tmp_path / 'local.db'}")
    create_schema(engine)
    sessions = make_sessions(engine)
    runs = LocalRuns(sessions)
    side = ReportsSide("local", LocalAccounts(sessions, hash_method=FAST_HASH), runs,
                       LocalReports(runs))
    side.cleanups.append(engine.dispose)
    return side


def _wsgi_side(name: str, data_app) -> ReportsSide:
    data = WsgiTransport(data_app, tokens=SessionTokens())
    app = create_reports(data_transport=data)
    return ReportsSide(name, RemoteAccounts(data), RemoteRuns(data),
                       RemoteReports(WsgiTransport(app, tokens=SessionTokens())))


@pytest.fixture(params=SIDES)
def reports_side(request, tmp_path) -> Iterator[ReportsSide]:
    """Each test runs once per side, with the very same assertions."""
    if request.param == "http":
        services = request.getfixturevalue("http_services")
        services.check_alive()
        with closing(HttpTransport(services.data_url, pool_size=2,
                                   tokens=SessionTokens())) as data, \
                closing(HttpTransport(services.reports_url, pool_size=2,
                                      tokens=SessionTokens())) as reports:  # gunicorn stops sooner
            yield ReportsSide("http", RemoteAccounts(data), RemoteRuns(data),
                              RemoteReports(reports))
        services.check_alive()
        return
    with in_process_side(request.param, tmp_path, _local_side, _wsgi_side) as side:
        yield side


# --- the processes for the `http` side ------------------------------------------------------

@dataclass
class HttpServices:
    servers: list[Server]
    data_url: str
    reports_url: str

    def check_alive(self) -> None:
        fail_if_dead(self.servers)


@pytest.fixture(scope="module")
def http_services(tmp_path_factory) -> Iterator[HttpServices]:
    """The data service and the reports service under gunicorn, started together, shared by
    the module."""
    run_dir = tmp_path_factory.mktemp("reports-http")
    data_port, reports_port, dealer_port = free_ports(3)
    auth = dealer_setup(run_dir)
    dealer = launch("tokendealer", "shims.tokendealer.wsgi:app", dealer_port, run_dir,
                     **auth.dealer_env)
    data = launch("dataservice", "extracted.dataservice.wsgi:app", data_port, run_dir,
                   TURNOUT_RUN_DIR=str(run_dir), TURNOUT_PASSWORD_HASH_METHOD=FAST_HASH,
                   TURNOUT_DATASERVICE_DATABASE_URL=f"sqlite:///{run_dir / 'data.db'}",
                   TURNOUT_TOKEN_JWKS_URL=str(auth.jwks_path))
    reports = launch("reports", "extracted.reports.wsgi:app", reports_port, run_dir,
                      TURNOUT_REPORTS_DATA_URL=data.url,
                      TURNOUT_REPORTS_DATA_AUDIENCE="dataservice",
                      **auth.client_env("reports", dealer.url))
    servers = [reports, data, dealer]  # callers first: they stop before what they call
    try:
        wait_healthy(servers)
        yield HttpServices(servers, data.url, reports.url)
    finally:
        stop(servers)


# --- the contract ----------------------------------------------------------------------------

def _zeros(days: int, **distances: float) -> tuple[DayDistance, ...]:
    return tuple(DayDistance(day=day, distance=distances.get(f"d{day}", 0.0))
                 for day in range(1, days + 1))


def test_a_month_with_runs(reports_side):
    runner = reports_side.runner()
    add = reports_side.add
    add(runner.id, dt.datetime(2026, 5, 1, 7), 5000.0, 1500, 150.0)
    add(runner.id, dt.datetime(2026, 5, 1, 18), 3000.0, 1000)  # no heart rate
    add(runner.id, dt.datetime(2026, 5, 15, 7), 10000.0, 3000, 160.0)
    add(runner.id, dt.datetime(2026, 5, 31, 23, 30), 2000.0, 600, 170.0)
    add(runner.id, dt.datetime(2026, 4, 30, 23, 59), 9000.0, 2700, 140.0)  # the month before
    add(runner.id, dt.datetime(2026, 6, 1, 0, 0), 9000.0, 2700, 140.0)  # the month after

    report = reports_side.reports.monthly_report(runner.id, 2026, 5)

    assert report == MonthlyReport(
        user_id=runner.id, year=2026, month=5, run_count=4, total_distance=20000.0,
        longest_distance=10000.0, total_time=6100,
        average_pace=305.0,  # 6100 s over 20 km
        # weighted by time, over the runs that have a heart rate: 807000 / 5100
        average_heartrate=158.2,
        per_day=_zeros(31, d1=8000.0, d15=10000.0, d31=2000.0))


def test_a_month_without_runs(reports_side):
    runner = reports_side.runner()
    reports_side.add(runner.id, dt.datetime(2026, 5, 10, 7), 5000.0, 1500, 150.0)

    assert reports_side.reports.monthly_report(runner.id, 2026, 6) == MonthlyReport(
        user_id=runner.id, year=2026, month=6, run_count=0, total_distance=0.0,
        longest_distance=0.0, total_time=0, average_pace=None, average_heartrate=None,
        per_day=_zeros(30))


def test_a_leap_february_has_29_days_and_another_runners_runs_do_not_count(reports_side):
    runner, other = reports_side.runner(), reports_side.runner()
    reports_side.add(other.id, dt.datetime(2028, 2, 29, 7), 5000.0, 1500, 150.0)
    reports_side.add(runner.id, dt.datetime(2028, 2, 29, 8), 4200.0, 1260)

    report = reports_side.reports.monthly_report(runner.id, 2028, 2)

    assert (report.run_count, report.total_distance, report.average_heartrate) == (1, 4200.0,
                                                                                    None)
    assert report.average_pace == 300.0
    assert report.per_day == _zeros(29, d29=4200.0)


@pytest.mark.parametrize("month", [13, 0])
def test_a_month_out_of_range_is_invalid_naming_month(reports_side, month):
    runner = reports_side.runner()
    with pytest.raises(ValidationError) as caught:
        reports_side.reports.monthly_report(runner.id, 2026, month)
    assert caught.value.field == "month"
    assert (caught.value.status, caught.value.code) == (400, "invalid")


def test_an_unknown_runner_is_not_found(reports_side):
    with pytest.raises(NotFound) as caught:
        reports_side.reports.monthly_report(UNKNOWN_USER, 2026, 5)
    assert str(UNKNOWN_USER) in caught.value.message
    assert (caught.value.status, caught.value.code) == (404, "not_found")
