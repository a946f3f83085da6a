"""One deadline per request (shims/deadline.py): shared by every remote call, capping their
timeouts, sent to the next hop, honoured there; nothing starts once it is spent; and a read
whose service hangs behind an open socket falls back within about its one-second budget."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Protocol

import gevent
import pytest
from fake_pool import FakePool
from flask import Flask, jsonify

from sample_runs import RUNS, RemoteRuns, RunInput, RunRecord
from shims import deadline
from shims.breaker import CircuitBreaker
from shims.contract import describe, read
from shims.errors import DeadlineExceeded, TransportError, ValidationError
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag, FlagSnapshot
from shims.metrics import TurnoutMetrics
from shims.router import OutcomeUnknown, Router, ServiceUnavailable, Sides, make_breaker
from shims.service import install_json_errors
from shims.service_app import service_app
from shims.shadow import ShadowRunner
from shims.transport import HttpTransport

BASE = "http://data.test"
GET_RUN, LIST_RUNS, ADD_RUN = (f"{BASE}/rpc/runs/{name}" for name in
                               ("get_run", "list_runs", "add_run"))
RECORD = RunRecord(id=7, user_id=3, name="Tempo", distance=8000.0,
                   start_date=dt.datetime(2026, 5, 3, 7), elapsed_time=2400, average_speed=3.3,
                   average_heartrate=None, total_elevation_gain=None, strava_id=None)
RECORD_WIRE = {"id": 7, "user_id": 3, "name": "Tempo", "distance": 8000.0,
               "start_date": "2026-05-03T07:00:00", "elapsed_time": 2400, "average_speed": 3.3,
               "average_heartrate": None, "total_elevation_gain": None, "strava_id": None}
RUN = RunInput(name="Tempo", distance=8000.0, start_date=dt.datetime(2026, 5, 3, 7),
               elapsed_time=2400)


class SlowPool(FakePool):
    """Each call takes `delay` seconds of the clock, as a busy service's would."""

    delay = 0.0

    def urlopen(self, method, url, **options):
        gevent.sleep(self.delay)
        return super().urlopen(method, url, **options)


@pytest.fixture
def pool():
    return SlowPool(BASE)


@pytest.fixture
def client(pool):
    return RemoteRuns(HttpTransport(BASE, connect_timeout=0.5, read_timeout=5.0, pool=pool),
                      retry_wait=0)


def sent_budget(request) -> float:
    return int(request.headers[deadline.HEADER]) / 1000


# --- the budget itself -----------------------------------------------------------------------

def test_outside_a_request_there_is_no_deadline():
    assert deadline.remaining() is None
    assert deadline.cap(5.0) == 5.0
    assert deadline.headers() == {}
    deadline.check()  # nothing to refuse


def test_within_narrows_and_never_widens():
    with deadline.within(2.0):
        assert 1.9 < deadline.remaining() <= 2.0
        with deadline.within(10.0):
            assert deadline.remaining() <= 2.0
        with deadline.within(0.5):
            assert deadline.remaining() <= 0.5
            assert deadline.cap(5.0) <= 0.5
        assert deadline.remaining() > 1.5
    assert deadline.remaining() is None


def test_a_spent_deadline_refuses_to_start_anything():
    with deadline.within(0.0), pytest.raises(DeadlineExceeded) as refused:
        deadline.check("POST /rpc/runs/add_run")
    assert refused.value.sent is False and refused.value.retryable is False
    assert "POST /rpc/runs/add_run" in refused.value.message


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("250", 0.25), (" 9000 ", 9.0)])
def test_the_header_is_whole_milliseconds(value, seconds):
    assert deadline.parse_header(value) == seconds


@pytest.mark.parametrize("value", ["", "-1", "1.5", "soon", "9" * 20, "1e3"])
def test_a_malformed_header_is_refused_naming_it(value):
    with pytest.raises(ValidationError) as refused:
        deadline.parse_header(value)
    assert refused.value.field == deadline.HEADER


# --- per request in an app -------------------------------------------------------------------

@pytest.fixture
def app():
    app = Flask(__name__)
    deadline.install(app, 10.0)
    install_json_errors(app)
    app.add_url_rule("/left", "left", lambda: jsonify(deadline.remaining()))
    return app


def test_each_request_gets_the_configured_budget_and_drops_it_after(app):
    left = app.test_client().get("/left").json
    assert 9.0 < left <= 9.5  # half a second kept back to answer in
    assert deadline.remaining() is None  # nothing leaks into the caller's context


def test_a_callers_shorter_budget_wins_and_a_longer_one_does_not(app):
    client = app.test_client()
    assert 0.2 < client.get("/left", headers={deadline.HEADER: "300"}).json <= 0.27
    assert client.get("/left", headers={deadline.HEADER: "60000"}).json <= 9.5


def test_a_malformed_budget_is_a_400_naming_the_header(app):
    response = app.test_client().get("/left", headers={deadline.HEADER: "soon"})
    assert response.status_code == 400
    assert response.json["field"] == deadline.HEADER


# --- remote calls within it ------------------------------------------------------------------

def test_timeouts_are_capped_by_what_is_left_and_it_is_sent_on(client, pool):
    pool.post(GET_RUN, json={"result": RECORD_WIRE})
    with deadline.within(0.3):
        client.get_run(3, 7)
    request = pool.last_request
    assert request.timeout[0] <= 0.3 and request.timeout[1] <= 0.3
    assert 0 < sent_budget(request) <= 0.3


def test_without_a_deadline_the_configured_timeouts_apply_and_nothing_is_sent(client, pool):
    pool.post(GET_RUN, json={"result": RECORD_WIRE})
    client.get_run(3, 7)
    assert pool.last_request.timeout == (0.5, 5.0)
    assert deadline.HEADER not in pool.last_request.headers


def test_calls_of_one_request_share_its_budget(client, pool):
    pool.post(GET_RUN, json={"result": RECORD_WIRE})
    pool.post(LIST_RUNS, json={"result": []})
    pool.delay = 0.3
    with deadline.within(2.0):
        client.get_run(3, 7)
        client.list_runs(3, 2026, 5)
    first, second = pool.request_history
    assert sent_budget(second) <= sent_budget(first) - 0.25
    assert second.timeout[1] <= 2.0 - 0.25


def test_a_read_and_its_retry_share_the_read_budget(pool):
    pool.post(GET_RUN, [{"fail": "refused"}, {"json": {"result": RECORD_WIRE}}])
    pool.delay = 0.3
    client = RemoteRuns(HttpTransport(BASE, pool=pool), retry_wait=0, read_budget=1.0)
    assert client.get_run(3, 7) == RECORD
    first, second = pool.request_history
    assert sent_budget(first) <= 1.0
    assert sent_budget(second) <= 1.0 - 0.25


def test_no_write_attempt_starts_once_the_budget_is_spent(client, pool):
    pool.post(ADD_RUN, fail="read_timeout")
    with deadline.within(0.0), pytest.raises(DeadlineExceeded) as refused:
        client.add_run(3, RUN)
    assert pool.call_count == 0 and refused.value.sent is False


def test_write_retries_stop_at_the_deadline(client, pool):
    pool.post(ADD_RUN, fail="reset")
    pool.delay = 0.3
    started = time.monotonic()
    with deadline.within(0.5), pytest.raises(TransportError) as failed:
        client.add_run(3, RUN)
    assert pool.call_count == 2  # a third would start with nothing left
    assert time.monotonic() - started < 1.5
    assert failed.value.sent is True  # the attempts that ran may have arrived


# --- the router: a spent budget --------------------------------------------------------------

class LocalRuns:
    def __init__(self):
        self.calls = []

    def get_run(self, user_id, run_id):
        self.calls.append("get_run")
        return RECORD

    def add_run(self, user_id, run):
        self.calls.append("add_run")
        return RECORD


class RemoteOnly:
    def version(self):
        return 1

    def snapshot(self):
        return FlagSnapshot(version=1, flags={"runs": Flag("runs", "remote")})


def remote_router(remote, silent_for: float = 5.0) -> tuple[Router, LocalRuns, CircuitBreaker]:
    """A router sending runs remote, over a local side that records its calls; one failure
    opens its breaker. `silent_for` is the service's read timeout, as init_app wires it."""
    metrics = TurnoutMetrics()
    local = LocalRuns()
    breaker = make_breaker("runs", metrics, failure_threshold=1, reset_timeout=30.0)
    router = Router(FeatureInfo("runs", owns_data=False), RUNS, Sides(local=local, remote=remote),
                    flags=FlagCache(RemoteOnly()), breaker=breaker, metrics=metrics,
                    shadow=ShadowRunner("runs", metrics), silent_for=silent_for)
    return router, local, breaker


def test_with_the_budget_spent_reads_go_local_and_writes_are_refused_not_applied(client, pool):
    router, local, breaker = remote_router(client)
    with deadline.within(0.0):
        assert router.get_run(3, 7) == RECORD
        with pytest.raises(ServiceUnavailable) as refused:
            router.add_run(3, RUN)
    assert pool.call_count == 0
    assert local.calls == ["get_run"]
    assert not isinstance(refused.value, OutcomeUnknown)
    assert "not applied" in refused.value.message
    assert breaker.state == "closed"  # the service was never asked: not its fault


# --- a service honours the caller's budget ---------------------------------------------------

class Totals(Protocol):
    @read
    def total_distance(self, user_id: int) -> float: ...


TOTALS = describe(Totals, "totals")


class LocalTotals:
    """A service's implementation that reads another service's contract."""

    def __init__(self, runs):
        self.runs = runs

    def total_distance(self, user_id: int) -> float:
        return sum(run.distance for run in self.runs.list_runs(user_id, 2026, 5))


def test_a_service_bounds_its_own_calls_by_the_callers_budget(pool):
    """A caller with 300 ms left makes the service give up on its own read in 300 ms, and it
    says so to the next hop."""
    pool.post(LIST_RUNS, json={"result": [RECORD_WIRE]})
    runs = RemoteRuns(HttpTransport(BASE, pool=pool), retry_wait=0)
    totals = service_app("totals", {"REQUEST_DEADLINE": 10.0}, [(TOTALS, LocalTotals(runs))],
                         title="Totals", description="", guard=lambda method: None)
    answered = totals.test_client().post(
        "/rpc/totals/total_distance", json={"args": {"user_id": 3}},
        headers={deadline.HEADER: "300"})
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json() == {"result": 8000.0}
    request = pool.last_request
    assert request.timeout[1] <= 0.3
    assert sent_budget(request) <= 0.3


# --- a service that accepts connections and never answers ------------------------------------

@pytest.fixture
def hung_url():
    """Like a crash-looping service under circus: the socket is open and listening, so a
    connection succeeds, but nobody ever reads the request or answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def hung_router(hung_url):
    """A router to the hung service, its breaker opened by one failure; `read_timeout` is
    the service's own timeout (5 s by default)."""
    transports = []

    def make(read_timeout: float = 5.0):
        transport = HttpTransport(hung_url, connect_timeout=0.5, read_timeout=read_timeout,
                                  pool_size=4)
        transports.append(transport)
        return remote_router(RemoteRuns(transport, retry_wait=0, read_budget=1.0),
                             silent_for=read_timeout)

    yield make
    for transport in transports:
        transport.close()


def test_a_read_from_a_hung_service_falls_back_within_about_a_second(hung_router):
    router, local, breaker = hung_router()
    started = time.monotonic()
    with deadline.within(10.0):
        assert router.get_run(3, 7) == RECORD
    took = time.monotonic() - started
    assert local.calls == ["get_run"]
    assert 0.8 < took < 2.0, f"took {took:.2f}s: the read's budget is 1 s, not 5 s per attempt"
    # Cut short by the read's budget: the service was slower than we would wait, which a
    # graceful reload is too; not grounds to open the breaker and refuse writes.
    assert breaker.state == "closed"


def test_a_write_to_a_hung_service_ends_with_its_deadline_as_unknown(hung_router):
    router, local, _ = hung_router()
    started = time.monotonic()
    with deadline.within(2.0), pytest.raises(OutcomeUnknown):
        router.add_run(3, RUN)
    took = time.monotonic() - started
    assert local.calls == []
    assert 1.5 < took < 3.0, f"took {took:.2f}s for a 2 s deadline"


def test_a_write_that_waited_the_services_full_timeout_counts_against_it(hung_router):
    router, _, breaker = hung_router(read_timeout=0.5)
    with deadline.within(1.4), pytest.raises(OutcomeUnknown) as unknown:
        router.add_run(3, RUN)  # 0.5 s, 0.5 s, then what is left: cut short
    assert "did not answer within 0.5s" in unknown.value.message
    # Threshold 1, and the service has answered nothing for its whole read timeout: down.
    assert breaker.state == "open"
