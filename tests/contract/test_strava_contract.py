"""The StravaImport contract: the very same assertions against every side.

- `local`: LocalStravaImport over LocalAccounts and LocalRuns on a fresh SQLite file.
- `wsgi-dataservice`: RemoteStravaImport -> the Strava importer app in this process, whose data
  calls go to the data service app in this process (no sockets).
- `wsgi-monolith`: the same, but the data calls go to the monolith's routed `/rpc`, the
  importer's default deployment.
- `http`: RemoteStravaImport -> the importer under gunicorn, whose data calls go to the data
  service under gunicorn and whose Strava is the development server under gunicorn.

Every side talks to the same Strava: the development server (`stravadev`), in this process
behind requests-mock for the in-process sides, for real over HTTP for `http`. Its tokens
come with about two months of seeded activities (runs and some rides), so each test asks
Strava what it holds and expects exactly that to be imported. The HTTP processes are shared
by this module's tests, so each test takes fresh Strava tokens and makes its own runners.

These fixtures are this module's own; they share nothing with tests/contract/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from gunicorn_processes import Server, fail_if_dead, free_ports, launch, stop, wait_healthy
import requests_mock

from extracted.stravaimport.app import create_app as create_stravaimport
from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.runs.service import LocalRuns
from monolith.strava.client import StravaClient
from monolith.strava.service import LocalStravaImport
from contracts.accounts import Profile, RemoteAccounts, SignUp, UserRecord
from contracts.runs import RemoteRuns
from contracts.strava import ImportResult, RemoteStravaImport
from shims.errors import NotFound, Unprocessable, UpstreamError, UpstreamUnavailable
from shims.transport import HttpTransport, WsgiTransport
from stravadev.app import create_app as create_stravadev

from support import SessionTokens, dealer_setup
from tests.contract.support import FAST_HASH, PASSWORD, in_process_side

SIDES = ("local", "wsgi-dataservice", "wsgi-monolith", "http")
CALL_TIMEOUT_S = 20.0  # import_all over HTTP walks every runner the module's tests linked

# Strava as the development server knows it: a pool of tokens, each with its seeded history.
TOKENS = [f"tok-{number:03d}" for number in range(100)]
STRAVA_TOKENS = ",".join(f"{token}:Runner {token}" for token in TOKENS)
REFUSED_TOKEN = "revoked-token"  # not one Strava knows: it answers 401
FAKE_STRAVA = "http://strava.test"  # the in-process sides' Strava, behind requests-mock
DOWN_STRAVA = "http://strava-down.test"  # refuses every connection, behind requests-mock
UNKNOWN_USER = 4_242_424_242


class Strava:
    """The Strava a side's importer talks to, as the test sees it: fresh tokens, what each
    token's athlete holds, and a way to add activities (POST /api/v3/activities)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._tokens = iter(TOKENS)

    def token(self) -> str:
        return next(self._tokens)

    def activities(self, token: str) -> list[dict[str, Any]]:
        reply = requests.get(f"{self.base_url}/api/v3/athlete/activities",
                             params={"per_page": 200}, timeout=5,
                             headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200, reply.text
        return reply.json()

    def add(self, token: str, kind: str = "Run", **values: Any) -> dict[str, Any]:
        start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0) \
            - dt.timedelta(hours=3)
        body = {"name": f"Added {kind}", "type": kind, "distance": 6000.0,
                "elapsed_time": 1800, "start_date": start.isoformat() + "Z", **values}
        reply = requests.post(f"{self.base_url}/api/v3/activities", json=body, timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 201, reply.text
        return reply.json()


@dataclass
class StravaSide:
    name: str
    accounts: Any
    runs: Any
    importer: Any  # the StravaImport under test
    importer_without_strava: Any  # the same, but its Strava refuses connections
    strava: Strava
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def runner(self, token: str | None = None) -> UserRecord:
        """A new runner with an email no other test uses, linked to `token` if given."""
        user = self.accounts.sign_up(SignUp(email=f"strava-{uuid.uuid4().hex[:12]}@example.com",
                                            password=PASSWORD, profile=Profile()))
        if token is not None:
            user = self.accounts.link_strava(user.id, token)
        return user

    def stored_runs(self, user_id: int, activities: list[dict[str, Any]]) -> list:
        """Every run stored for the runner in the months the activities span."""
        months = sorted({(start.year, start.month) for start in map(_start, activities)})
        return [run for year, month in months
                for run in self.runs.list_runs(user_id, year, month)]


def _start(activity: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(activity["start_date"].replace("Z", ""))


def _runs(activities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [activity for activity in activities if activity["type"] == "Run"]


# --- the in-process Strava, behind requests-mock -----------------------------------------

def serve_strava_in_process(mocker) -> None:
    """FAKE_STRAVA answered by a fresh development server in this process; DOWN_STRAVA
    refuses connections. Nothing else is allowed out."""
    client = create_stravadev({"TOKENS": STRAVA_TOKENS}).test_client()

    def strava(request):
        if not request.url.startswith(FAKE_STRAVA + "/"):
            return None
        answer = client.open(request.path_url, method=request.method,
                             headers=dict(request.headers), data=request.body)
        return _response(request, answer)

    mocker.add_matcher(strava)
    mocker.register_uri(requests_mock.ANY, re.compile(re.escape(DOWN_STRAVA) + "/"),
                        exc=requests.exceptions.ConnectionError("connection refused"))


def _response(request, answer):
    return requests_mock.create_response(request, status_code=answer.status_code,
                                         content=answer.get_data(),
                                         headers={"Content-Type": answer.content_type})


# --- the sides -----------------------------------------------------------------------------

def _local_side(tmp_path: Path) -> StravaSide:
    engine = make_engine(f"sqlite:///{tmp_path / 'local.db'}")
    create_schema(engine)
    sessions = make_sessions(engine)
    accounts, runs = LocalAccounts(sessions, hash_method=FAST_HASH), LocalRuns(sessions)
    side = StravaSide("local", accounts, runs,
                      LocalStravaImport(accounts, runs, StravaClient(FAKE_STRAVA)),
                      LocalStravaImport(accounts, runs, StravaClient(DOWN_STRAVA)),
                      Strava(FAKE_STRAVA))
    side.cleanups.append(engine.dispose)
    return side


def _wsgi_side(name: str, data_app) -> StravaSide:
    data = WsgiTransport(data_app, tokens=SessionTokens())

    def importer(strava_url: str) -> RemoteStravaImport:
        app = create_stravaimport({"STRAVA_URL": strava_url}, data_transport=data)
        return RemoteStravaImport(WsgiTransport(app, tokens=SessionTokens()))

    return StravaSide(name, RemoteAccounts(data), RemoteRuns(data), importer(FAKE_STRAVA),
                      importer(DOWN_STRAVA), Strava(FAKE_STRAVA))


@pytest.fixture(params=SIDES)
def strava_side(request, tmp_path) -> Iterator[StravaSide]:
    """Each test runs once per side, with the very same assertions."""
    if request.param == "http":
        services = request.getfixturevalue("http_services")
        services.check_alive()
        with ExitStack() as opened:  # closed after: gunicorn stops sooner
            def transport(url: str) -> HttpTransport:
                return opened.enter_context(closing(HttpTransport(
                    url, pool_size=2, read_timeout=CALL_TIMEOUT_S, tokens=SessionTokens())))

            data = transport(services.data_url)
            yield StravaSide("http", RemoteAccounts(data), RemoteRuns(data),
                             RemoteStravaImport(transport(services.importer_url)),
                             RemoteStravaImport(transport(services.down_importer_url)),
                             services.strava)
        services.check_alive()
        return
    serve_strava_in_process(request.getfixturevalue("requests_mock"))
    with in_process_side(request.param, tmp_path, _local_side, _wsgi_side) as side:
        yield side


# --- the processes for the `http` side ------------------------------------------------------

@dataclass
class HttpServices:
    servers: list[Server]
    data_url: str
    importer_url: str
    down_importer_url: str
    strava: Strava

    def check_alive(self) -> None:
        fail_if_dead(self.servers)


@pytest.fixture(scope="module")
def http_services(tmp_path_factory) -> Iterator[HttpServices]:
    """The data service, the Strava development server and two Strava importers (one whose
    Strava is a closed port) under gunicorn, started together, shared by the module."""
    run_dir = tmp_path_factory.mktemp("strava-http")
    data_port, strava_port, importer_port, down_port, closed_port, dealer_port = free_ports(6)
    auth = dealer_setup(run_dir)
    dealer = launch("tokendealer", "shims.tokendealer.wsgi:app", dealer_port, run_dir,
                     **auth.dealer_env)
    data = launch("dataservice", "extracted.dataservice.wsgi:app", data_port, run_dir,
                  TURNOUT_RUN_DIR=str(run_dir), TURNOUT_PASSWORD_HASH_METHOD=FAST_HASH,
                  TURNOUT_DATASERVICE_DATABASE_URL=f"sqlite:///{run_dir / 'data.db'}",
                  TURNOUT_TOKEN_JWKS_URL=str(auth.jwks_path))
    strava = launch("stravadev", "stravadev.wsgi:app", strava_port, run_dir,
                    TURNOUT_STRAVA_TOKENS=STRAVA_TOKENS)
    importers = [launch(name, "extracted.stravaimport.wsgi:app", port, run_dir,
                        TURNOUT_STRAVA_URL=strava_url, TURNOUT_STRAVAIMPORT_DATA_URL=data.url,
                        TURNOUT_STRAVAIMPORT_DATA_AUDIENCE="dataservice",
                        TURNOUT_REMOTE_READ_TIMEOUT=str(CALL_TIMEOUT_S),
                        **auth.client_env("stravaimport", dealer.url))
                 for name, port, strava_url in (
                     ("stravaimport", importer_port, strava.url),
                     ("stravaimport-no-strava", down_port, f"http://127.0.0.1:{closed_port}"))]
    servers = [*importers, data, strava, dealer]  # callers first: they stop before the called
    try:
        wait_healthy(servers)
        yield HttpServices(servers, data.url, importers[0].url, importers[1].url,
                           Strava(strava.url))
    finally:
        stop(servers)


# --- the contract ----------------------------------------------------------------------------

def test_link_stores_a_token_strava_accepts(strava_side):
    token = strava_side.strava.token()
    runner = strava_side.runner()
    linked = strava_side.importer.link(runner.id, f" {token} ")
    assert (linked.id, linked.strava_linked) == (runner.id, True)
    assert strava_side.accounts.strava_link(runner.id).token == token


def test_link_refuses_a_token_strava_refuses_and_keeps_the_old_one(strava_side):
    old = strava_side.strava.token()
    runner = strava_side.runner(old)
    with pytest.raises(Unprocessable) as caught:
        strava_side.importer.link(runner.id, REFUSED_TOKEN)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422, "unprocessable", "strava_token")
    assert "refused by Strava" in caught.value.message
    assert strava_side.accounts.strava_link(runner.id).token == old


def test_link_with_strava_down_is_a_503_and_stores_nothing(strava_side):
    runner = strava_side.runner()
    with pytest.raises(UpstreamUnavailable) as caught:
        strava_side.importer_without_strava.link(runner.id, strava_side.strava.token())
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        503, "upstream_unavailable", "strava_token")
    assert "nothing was linked" in caught.value.message
    assert not strava_side.accounts.get_user(runner.id).strava_linked


def test_link_for_an_unknown_runner_is_not_found(strava_side):
    with pytest.raises(NotFound) as caught:
        strava_side.importer.link(UNKNOWN_USER, strava_side.strava.token())
    assert str(UNKNOWN_USER) in caught.value.message


def test_an_import_stores_every_run_strava_holds(strava_side):
    token = strava_side.strava.token()
    runner = strava_side.runner(token)
    activities = strava_side.strava.activities(token)
    runs = _runs(activities)
    assert runs, "the development server seeds runs for every token"

    result = strava_side.importer.import_user(runner.id)

    assert result == ImportResult(user_id=runner.id, fetched=len(activities), created=len(runs),
                                  skipped=0, ignored=len(activities) - len(runs), error=None)
    stored = {run.strava_id: run for run in strava_side.stored_runs(runner.id, activities)}
    assert set(stored) == {activity["id"] for activity in runs}
    first = runs[0]
    run = stored[first["id"]]
    assert (run.name, run.distance, run.elapsed_time, run.start_date,
            run.average_heartrate) == (first["name"], first["distance"],
                                       first["elapsed_time"], _start(first),
                                       first["average_heartrate"])


def test_a_second_import_creates_only_what_is_new(strava_side):
    token = strava_side.strava.token()
    runner = strava_side.runner(token)
    first = strava_side.importer.import_user(runner.id)
    assert first.created > 0

    again = strava_side.importer.import_user(runner.id)
    assert (again.created, again.skipped, again.error) == (0, first.created, None)

    added = strava_side.strava.add(token, name="Evening run", distance=7500.0)
    third = strava_side.importer.import_user(runner.id)
    assert (third.fetched, third.created, third.skipped) == (first.fetched + 1, 1, first.created)
    stored = strava_side.stored_runs(runner.id, [added])
    assert [run.name for run in stored if run.strava_id == added["id"]] == ["Evening run"]


def test_activities_that_are_not_runs_or_are_malformed_are_ignored(strava_side):
    token = strava_side.strava.token()
    runner = strava_side.runner(token)
    ride = strava_side.strava.add(token, "Ride", distance=40000.0)
    swim = strava_side.strava.add(token, "Swim", distance=1500.0)
    too_long = strava_side.strava.add(token, "Run", distance=5_000_000.0)  # 5000 km
    activities = strava_side.strava.activities(token)
    not_runs = [activity for activity in activities if activity["type"] != "Run"]

    result = strava_side.importer.import_user(runner.id)

    assert result.ignored == len(not_runs) + 1
    assert result.created == len(activities) - len(not_runs) - 1
    stored = {run.strava_id for run in strava_side.stored_runs(runner.id, activities)}
    assert not stored & {ride["id"], swim["id"], too_long["id"]}
    assert len(stored) == result.created


def test_a_runner_without_strava_is_not_found_naming_the_token(strava_side):
    runner = strava_side.runner()
    with pytest.raises(NotFound) as caught:
        strava_side.importer.import_user(runner.id)
    assert caught.value.field == "strava_token"
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_an_unknown_runner_is_not_found(strava_side):
    with pytest.raises(NotFound) as caught:
        strava_side.importer.import_user(UNKNOWN_USER)
    assert str(UNKNOWN_USER) in caught.value.message


def test_strava_refusing_the_token_is_an_upstream_error(strava_side):
    runner = strava_side.runner(REFUSED_TOKEN)
    with pytest.raises(UpstreamError) as caught:
        strava_side.importer.import_user(runner.id)
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert "link Strava again" in caught.value.message
    assert strava_side.stored_runs(runner.id, [{"start_date": "2026-05-01T00:00:00Z"}]) == []


def test_strava_down_is_an_upstream_error(strava_side):
    runner = strava_side.runner(strava_side.strava.token())
    with pytest.raises(UpstreamError) as caught:
        strava_side.importer_without_strava.import_user(runner.id)
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert "could not be reached" in caught.value.message


def test_import_all_reports_each_runner_and_one_failure_stops_no_one(strava_side):
    tokens = [strava_side.strava.token(), strava_side.strava.token()]
    first, second = (strava_side.runner(token) for token in tokens)
    refused = strava_side.runner(REFUSED_TOKEN)
    unlinked = strava_side.runner()
    expected = {runner.id: len(_runs(strava_side.strava.activities(token)))
                for runner, token in zip((first, second), tokens, strict=True)}

    results = strava_side.importer.import_all()

    assert all(isinstance(result, ImportResult) for result in results)
    mine = {result.user_id: result for result in results
            if result.user_id in {first.id, second.id, refused.id, unlinked.id}}
    assert set(mine) == {first.id, second.id, refused.id}  # only linked runners
    for user_id, created in expected.items():
        assert (mine[user_id].created, mine[user_id].error) == (created, None)
    failed = mine[refused.id]
    assert (failed.fetched, failed.created, failed.skipped) == (0, 0, 0)
    assert failed.error and "link Strava again" in failed.error

