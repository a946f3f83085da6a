"""The remote client over HttpTransport, against a fake urllib3 pool (tests/fake_pool.py):
decoding, error mapping, timeouts, the read retry, the keyed write retry, and the router's
breaker in front of it; on an app's own contract (tests/kit/sample_runs.py)."""

import datetime as dt
import json

import gevent
import pytest
from fake_pool import FakePool
from urllib3.exceptions import (ConnectTimeoutError, NewConnectionError, ProtocolError,
                                ReadTimeoutError)

from shims.errors import (
    Conflict,
    ContractError,
    Forbidden,
    NotFound,
    TransportError,
    Unauthorized,
    UpstreamError,
    ValidationError,
)
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag, FlagSnapshot
from shims.metrics import TurnoutMetrics
from shims.router import OutcomeUnknown, Router, ServiceUnavailable, Sides, make_breaker
from shims.shadow import ShadowRunner
from shims.transport import HttpTransport
from sample_runs import RUNS, ImportCount, RemoteRuns, RunInput, RunRecord
from support import ManualClock

BASE = "http://data.test"
LIST_RUNS = f"{BASE}/rpc/runs/list_runs"
GET_RUN = f"{BASE}/rpc/runs/get_run"
ADD_RUN = f"{BASE}/rpc/runs/add_run"
DELETE_RUN = f"{BASE}/rpc/runs/delete_run"
IMPORT_RUNS = f"{BASE}/rpc/runs/import_runs"

RECORD = RunRecord(id=7, user_id=3, name="Tempo", distance=10000.0,
                   start_date=dt.datetime(2026, 5, 17, 7, 30), elapsed_time=2500,
                   average_speed=4.0, average_heartrate=150.0, total_elevation_gain=None,
                   strava_id=None)
RECORD_WIRE = {"id": 7, "user_id": 3, "name": "Tempo", "distance": 10000.0,
               "start_date": "2026-05-17T07:30:00", "elapsed_time": 2500, "average_speed": 4.0,
               "average_heartrate": 150.0, "total_elevation_gain": None, "strava_id": None}
RUN = RunInput(name="Tempo", distance=10000.0, start_date=dt.datetime(2026, 5, 17, 7, 30),
               elapsed_time=2500, average_heartrate=150.0)


@pytest.fixture
def service():
    return FakePool(BASE)


@pytest.fixture
def client(service):
    return RemoteRuns(HttpTransport(BASE, connect_timeout=0.25, read_timeout=3.0, pool=service),
                      retry_wait=0)


# --- results -------------------------------------------------------------------------------

def test_a_result_decodes_to_the_contract_dataclasses(client, service):
    service.post(LIST_RUNS, json={"result": [RECORD_WIRE, {**RECORD_WIRE, "id": 8}]})
    runs = client.list_runs(3, 2026, 5)
    assert runs == [RECORD, RunRecord(**{**RECORD.__dict__, "id": 8})]
    assert all(type(run) is RunRecord for run in runs)
    assert isinstance(runs[0].start_date, dt.datetime)


def test_results_of_every_shape(client, service):
    service.post(GET_RUN, json={"result": {**RECORD_WIRE,
                                           "start_date": "2026-05-17T09:30:00+02:00"}})
    service.post(DELETE_RUN, json={"result": None})
    service.post(IMPORT_RUNS, json={"result": {"created": 2, "skipped": 1}})
    assert client.get_run(3, 7) == RECORD  # offsets become naive UTC
    assert client.delete_run(3, 7) is None
    assert client.import_runs(3, [RUN, RUN]) == ImportCount(created=2, skipped=1)


def test_the_request_body_is_the_arguments_in_wire_form(client, service):
    service.post(ADD_RUN, json={"result": RECORD_WIRE})
    client.add_run(3, run=RUN)
    request = service.last_request
    assert request.method == "POST"
    assert request.url == ADD_RUN
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"args": {"user_id": 3, "run": {
        "name": "Tempo", "distance": 10000.0, "start_date": "2026-05-17T07:30:00+00:00",
        "elapsed_time": 2500, "average_heartrate": 150.0, "total_elevation_gain": None,
        "strava_id": None}}}


def test_positional_keyword_and_default_arguments_bind_by_name(client, service):
    service.post(LIST_RUNS, json={"result": []})
    client.list_runs(3, month=5, year=2026)
    assert service.last_request.json() == {"args": {"user_id": 3, "year": 2026,
                                                    "month": 5}}
    with pytest.raises(TypeError):
        client.list_runs(3, 2026)  # missing month: a programming error, never sent
    assert service.call_count == 1


def test_the_configured_timeouts_reach_the_pool(client, service):
    service.post(GET_RUN, json={"result": RECORD_WIRE})
    client.get_run(3, 7)
    assert service.last_request.timeout == (0.25, 3.0)


# --- contract errors -----------------------------------------------------------------------

@pytest.mark.parametrize("status, code, error", [
    (400, "invalid", ValidationError),
    (401, "unauthorized", Unauthorized),
    (403, "forbidden", Forbidden),
    (404, "not_found", NotFound),
    (409, "conflict", Conflict),
    (502, "upstream_error", UpstreamError),
])
def test_each_contract_error_maps_back_to_its_class(client, service, status, code, error):
    service.post(GET_RUN, status_code=status,
                 json={"error": code, "message": f"it went {code}", "field": "run_id"})
    with pytest.raises(error) as caught:
        client.get_run(3, 7)
    assert type(caught.value) is error
    assert not isinstance(caught.value, TransportError)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == f"it went {code}"
    assert caught.value.field == "run_id"
    assert service.call_count == 1  # a contract error is an answer: never retried


def test_a_contract_error_without_a_field_keeps_none(client, service):
    service.post(ADD_RUN, status_code=404, json={"error": "not_found",
                                                 "message": "no user 3"})
    with pytest.raises(NotFound) as caught:
        client.add_run(3, RUN)
    assert caught.value.field is None
    assert caught.value.message == "no user 3"


def test_a_validation_error_names_its_field(client, service):
    service.post(ADD_RUN, status_code=400, json={
        "error": "invalid", "message": "distance must be at least 1", "field": "run.distance"})
    with pytest.raises(ValidationError) as caught:
        client.add_run(3, RUN)
    assert caught.value.field == "run.distance"
    assert caught.value.to_dict() == {"error": "invalid", "message": "distance must be at "
                                      "least 1", "field": "run.distance",
                                      "errors": [{"field": "run.distance", "message":
                                                  "distance must be at least 1"}]}


def test_a_validation_error_keeps_every_problem_the_service_listed(client, service):
    problems = [{"field": "run.name", "message": "name is required"},
                {"field": "run.distance", "message": "distance is required"}]
    service.post(ADD_RUN, status_code=400, json={
        "error": "invalid", "message": "name is required", "field": "run.name",
        "errors": problems})
    with pytest.raises(ValidationError) as caught:
        client.add_run(3, RUN)
    assert (caught.value.field, caught.value.message) == ("run.name", "name is required")
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("run.name", "name is required"), ("run.distance", "distance is required")]
    assert caught.value.to_dict()["errors"] == problems


def test_a_field_that_is_not_text_is_dropped(client, service):
    service.post(ADD_RUN, status_code=400, json={"error": "invalid", "message": "bad",
                                                 "field": {"nested": True}})
    with pytest.raises(ValidationError) as caught:
        client.add_run(3, RUN)
    assert caught.value.field is None
    assert caught.value.message == "bad"


# --- garbage answers are transport errors --------------------------------------------------

GARBAGE = {
    "status_code_mismatch": {"status_code": 404, "json": {"error": "conflict", "message": "x"}},
    "invalid_on_500": {"status_code": 500, "json": {"error": "invalid", "message": "x"}},
    "internal_error": {"status_code": 500, "json": {"error": "internal_error",
                                                    "message": "it has been logged"}},
    "unknown_code": {"status_code": 400, "json": {"error": "invalid_flag", "message": "x"}},
    "unhashable_code": {"status_code": 400, "json": {"error": ["invalid"], "message": "x"}},
    "html_page": {"status_code": 500, "text": "<html>Internal Server Error</html>"},
    "non_json_200": {"status_code": 200, "text": "OK"},
    "empty_200": {"status_code": 200, "text": ""},
    "json_list_200": {"status_code": 200, "json": [RECORD_WIRE]},
    "200_without_result": {"status_code": 200, "json": {"results": RECORD_WIRE}},
    "wrong_type_in_result": {"status_code": 200, "json": {"result": {**RECORD_WIRE,
                                                                     "distance": "far"}}},
    "missing_field_in_result": {"status_code": 200, "json": {"result": {
        k: v for k, v in RECORD_WIRE.items() if k != "name"}}},
    "extra_field_in_result": {"status_code": 200, "json": {"result": {**RECORD_WIRE,
                                                                      "secret": 1}}},
    "bool_for_int_in_result": {"status_code": 200, "json": {"result": {**RECORD_WIRE,
                                                                       "id": True}}},
    "result_not_an_object": {"status_code": 200, "json": {"result": "a run"}},
}


@pytest.mark.parametrize("reply", GARBAGE.values(), ids=GARBAGE.keys())
def test_an_answer_outside_the_contract_is_a_transport_error(client, service, reply):
    service.post(ADD_RUN, **reply)
    with pytest.raises(TransportError) as caught:
        client.add_run(3, RUN)
    assert not isinstance(caught.value, ContractError)
    assert "runs.add_run" in caught.value.message or BASE in caught.value.message
    assert service.call_count == 1


def test_a_result_breaking_the_contract_says_where(client, service):
    service.post(GET_RUN, json={"result": {**RECORD_WIRE, "distance": "far"}})
    with pytest.raises(TransportError) as caught:
        client.get_run(3, 7)
    assert "runs.get_run" in caught.value.message
    assert "result.distance" in caught.value.message
    assert isinstance(caught.value.__cause__, ValidationError)


def test_a_500_message_is_shortened_into_the_transport_error(client, service):
    service.post(ADD_RUN, status_code=500, json={"error": "internal_error",
                                                 "message": "x" * 5000})
    with pytest.raises(TransportError) as caught:
        client.add_run(3, RUN)
    assert "HTTP 500" in caught.value.message
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("failure, cause", [
    ("refused", NewConnectionError), ("connect_timeout", ConnectTimeoutError),
    ("read_timeout", ReadTimeoutError), ("reset", ProtocolError)])
def test_network_failures_are_transport_errors(client, service, failure, cause):
    service.post(ADD_RUN, fail=failure)
    with pytest.raises(TransportError) as caught:
        client.add_run(3, RUN)
    assert ADD_RUN in caught.value.message
    assert type(caught.value.__cause__) is cause


@pytest.mark.parametrize("failure, says", [
    ("refused", "could not be reached: Connection refused"),
    ("connect_timeout", "did not accept a connection within 0.25s"),
    ("reset", "could not be reached: ProtocolError")])
def test_each_network_failure_says_what_happened(client, service, failure, says):
    service.post(GET_RUN, fail=failure)
    with pytest.raises(TransportError, match=says) as caught:
        client.get_run(3, 7)
    assert caught.value.retryable is True


def test_a_timeout_names_the_read_timeout(client, service):
    service.post(ADD_RUN, fail="read_timeout")
    with pytest.raises(TransportError, match=r"did not answer within 3s"):
        client.add_run(3, RUN)


# --- retries -------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["refused", "connect_timeout", "reset"])
def test_a_read_is_retried_once_then_fails(client, service, failure):
    service.post(GET_RUN, fail=failure)
    with pytest.raises(TransportError):
        client.get_run(3, 7)
    assert service.call_count == 2


def test_a_read_that_timed_out_is_not_retried(client, service):
    """A service that accepted the connection but did not answer (hung, or stopped behind
    a socket circus keeps open) would only make a retry wait as long again."""
    service.post(GET_RUN, fail="read_timeout")
    with pytest.raises(TransportError) as raised:
        client.get_run(3, 7)
    assert service.call_count == 1 and raised.value.retryable is False


def test_a_read_that_succeeds_on_the_second_attempt_returns_the_result(client, service):
    service.post(GET_RUN, [{"fail": "connect_timeout"},
                           {"json": {"result": RECORD_WIRE}}])
    assert client.get_run(3, 7) == RECORD
    assert service.call_count == 2
    first, second = service.request_history
    assert first.json() == second.json() == {"args": {"user_id": 3, "run_id": 7}}


def test_a_read_answered_with_garbage_is_retried_too(client, service):
    service.post(LIST_RUNS, [{"status_code": 500, "json": {"error": "internal_error",
                                                           "message": "boom"}},
                             {"json": {"result": []}}])
    assert client.list_runs(3, 2026, 5) == []
    assert service.call_count == 2


def test_a_read_is_not_retried_on_a_contract_error(client, service):
    service.post(GET_RUN, [{"status_code": 404, "json": {"error": "not_found",
                                                         "message": "no run 7"}},
                           {"json": {"result": RECORD_WIRE}}])
    with pytest.raises(NotFound):
        client.get_run(3, 7)
    assert service.call_count == 1


def test_read_attempts_are_configurable(service):
    service.post(GET_RUN, fail="refused")
    once = RemoteRuns(HttpTransport(BASE, pool=service), read_attempts=1, retry_wait=0)
    with pytest.raises(TransportError):
        once.get_run(3, 7)
    assert service.call_count == 1


WRITES = [("add_run", ADD_RUN, (3, RUN), RECORD_WIRE, RECORD),
          ("update_run", f"{BASE}/rpc/runs/update_run", (3, 7, RUN), RECORD_WIRE, RECORD),
          ("delete_run", DELETE_RUN, (3, 7), None, None),
          ("import_runs", IMPORT_RUNS, (3, [RUN]), {"created": 1, "skipped": 0},
           ImportCount(created=1, skipped=0))]
# Every way a write can fail without an answer from the contract; the first three may have
# reached the service and been applied there.
UNANSWERED = [{"fail": "read_timeout"}, {"fail": "reset"},
              {"status_code": 502, "text": "<html>Bad Gateway</html>"},
              {"status_code": 503, "json": {"error": "unavailable", "message": "restarting"}},
              {"status_code": 504, "text": ""},
              {"fail": "refused"}, {"fail": "connect_timeout"}]


@pytest.mark.parametrize("method, url, args, answer, result", WRITES,
                         ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("failure", UNANSWERED, ids=lambda f: str(f.get("fail",
                                                                        f.get("status_code"))))
def test_a_write_without_an_answer_is_sent_again_with_the_same_key(client, service, method, url,
                                                                   args, answer, result,
                                                                   failure):
    """The service keeps each write's outcome under its Idempotency-Key, so sending it again
    can only apply it once: a write whose outcome is unknown is retried, not given up."""
    service.post(url, [failure, {"json": {"result": answer}}])
    assert getattr(client, method)(*args) == result
    first, second = service.request_history
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert len(first.headers["Idempotency-Key"]) >= 32
    assert first.body == second.body


def test_each_write_gets_its_own_key(client, service):
    service.post(ADD_RUN, json={"result": RECORD_WIRE})
    client.add_run(3, RUN)
    client.add_run(3, RUN)
    first, second = service.request_history
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]


@pytest.mark.parametrize("failure, sent", [("read_timeout", True), ("reset", True),
                                           ("refused", False), ("connect_timeout", False)])
def test_a_write_is_sent_at_most_write_attempts_times(service, failure, sent):
    service.post(ADD_RUN, fail=failure)
    client = RemoteRuns(HttpTransport(BASE, pool=service), retry_wait=0, write_attempts=3)
    with pytest.raises(TransportError) as caught:
        client.add_run(3, RUN)
    assert service.call_count == 3
    assert caught.value.sent is sent  # only an unconnected write is known not applied


def test_a_write_that_may_have_arrived_once_stays_unknown_after_refusals(client, service):
    service.post(ADD_RUN, [{"fail": "read_timeout"}, {"fail": "refused"}])
    with pytest.raises(TransportError) as caught:
        client.add_run(3, RUN)
    assert service.call_count == 3
    assert caught.value.sent is True


def test_a_write_answered_with_garbage_is_not_retried(client, service):
    service.post(ADD_RUN, [{"status_code": 500, "text": "oops"},
                           {"json": {"result": RECORD_WIRE}}])
    with pytest.raises(TransportError):
        client.add_run(3, RUN)
    assert service.call_count == 1


def test_the_default_retry_waits_a_little(service):
    """The real default (50 ms) stays well under a second, so a retried read is cheap."""
    service.post(GET_RUN, [{"fail": "refused"},
                           {"json": {"result": RECORD_WIRE}}])
    assert RemoteRuns(HttpTransport(BASE, pool=service)).get_run(3, 7) == RECORD
    assert service.call_count == 2


# --- the breaker in front of the remote side -----------------------------------------------

class FakeRuns:
    """The local side: answers every read, records every write."""

    def __init__(self):
        self.calls = []

    def get_run(self, user_id, run_id):
        self.calls.append(("get_run", user_id, run_id))
        return RECORD

    def list_runs(self, user_id, year, month):
        self.calls.append(("list_runs", user_id, year, month))
        return [RECORD]

    def add_run(self, user_id, run):
        self.calls.append(("add_run", user_id, run))
        return RECORD


class FakeFlagStore:
    def __init__(self, mode):
        self._snapshot = FlagSnapshot(version=1, flags={"runs": Flag("runs", mode)})

    def version(self):
        return self._snapshot.version

    def snapshot(self):
        return self._snapshot


@pytest.fixture
def routed(service):
    metrics = TurnoutMetrics()
    clock = ManualClock()
    breaker = make_breaker("runs", metrics, failure_threshold=3, reset_timeout=30.0,
                           clock=clock)
    local = FakeRuns()
    remote = RemoteRuns(HttpTransport(BASE, pool=service), retry_wait=0)
    router = Router(FeatureInfo("runs", owns_data=False), RUNS, Sides(local=local, remote=remote),
                    flags=FlagCache(FakeFlagStore("remote")), breaker=breaker, metrics=metrics,
                    shadow=ShadowRunner("runs", metrics))
    return router, local, breaker, metrics, clock


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0


def test_the_breaker_opens_after_consecutive_connection_errors(routed, service):
    router, local, breaker, metrics, clock = routed
    service.post(GET_RUN, fail="refused")
    service.post(ADD_RUN, json={"result": RECORD_WIRE})

    for attempt in range(3):
        assert breaker.state == "closed", attempt
        assert router.get_run(3, 7) == RECORD  # each failed remote read falls back locally
    assert breaker.state == "open"
    assert service.call_count == 3 * 2  # every read tried twice before falling back
    assert sample(metrics, "turnout_fallbacks_total", feature="runs", method="runs.get_run",
                  reason="transport_error") == 3
    assert sample(metrics, "turnout_breaker_transitions_total", feature="runs", to="open") == 1

    # Open: reads are answered locally without touching the network...
    local.calls.clear()
    assert router.get_run(3, 7) == RECORD
    assert router.list_runs(3, 2026, 5) == [RECORD]
    assert service.call_count == 6
    assert local.calls == [("get_run", 3, 7), ("list_runs", 3, 2026, 5)]
    assert sample(metrics, "turnout_fallbacks_total", feature="runs", method="runs.get_run",
                  reason="breaker_open") == 1

    # ... and writes are refused, applied nowhere, with a Retry-After.
    with pytest.raises(ServiceUnavailable) as caught:
        router.add_run(3, RUN)
    assert caught.value.status == 503
    assert caught.value.retry_after == 30
    assert service.call_count == 6
    assert local.calls == [("get_run", 3, 7), ("list_runs", 3, 2026, 5)]

    # After the reset timeout one trial call goes through; its success closes the breaker.
    clock.now += 30
    assert router.add_run(3, RUN) == RECORD
    assert service.call_count == 7
    assert service.last_request.url == ADD_RUN
    assert breaker.state == "closed"


def test_a_write_whose_outcome_stays_unknown_says_so_and_how_to_retry(routed, service):
    """Issue 8: the 503 said "it was not retried" about writes the service had applied.
    A write that may have arrived is reported as unknown, with the safe way to retry."""
    router, local, breaker, _, _ = routed
    service.post(ADD_RUN, fail="read_timeout")
    with pytest.raises(OutcomeUnknown) as caught:
        router.add_run(3, RUN)
    assert (caught.value.status, caught.value.code) == (503, "outcome_unknown")
    assert "outcome is unknown" in caught.value.message
    assert "same Idempotency-Key" in caught.value.message
    assert "not applied" not in caught.value.message
    assert caught.value.retry_after >= 1
    assert service.call_count == 3  # sent with its key until the attempts ran out
    assert local.calls == []
    assert breaker.state == "closed"  # one failed call of three: counted, not yet open


def test_a_write_that_never_connected_is_reported_not_applied(routed, service):
    router, local, _, _, _ = routed
    service.post(ADD_RUN, fail="refused")
    with pytest.raises(ServiceUnavailable) as caught:
        router.add_run(3, RUN)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.code == "unavailable"
    assert "it was not applied" in caught.value.message
    assert local.calls == []


def test_contract_errors_do_not_open_the_breaker(routed, service):
    router, local, breaker, _, _ = routed
    service.post(GET_RUN, status_code=404, json={"error": "not_found", "message": "gone"})
    for _ in range(5):
        with pytest.raises(NotFound):
            router.get_run(3, 7)
    assert breaker.state == "closed"
    assert service.call_count == 5
    assert local.calls == []  # a contract answer is final: no local fallback


class FailsFirstTimePool(FakePool):
    """Refuses the first attempt at each run id, answers the second: a retry per call."""

    def __init__(self, base_url):
        super().__init__(base_url)
        self.tried: set[int] = set()

    def urlopen(self, method, url, **options):
        run_id = json.loads(options["body"])["args"]["run_id"]
        first = run_id not in self.tried
        self.tried.add(run_id)
        self.post(GET_RUN, **({"fail": "refused"} if first else
                              {"json": {"result": {**RECORD_WIRE, "id": run_id}}}))
        return super().urlopen(method, url, **options)


def test_concurrent_reads_each_get_their_own_retry():
    """One client serves every greenlet of a worker; each read's attempts are its own."""
    pool = FailsFirstTimePool(BASE)
    client = RemoteRuns(HttpTransport(BASE, pool=pool), retry_wait=0.01)
    calls = [gevent.spawn(client.get_run, 3, run_id) for run_id in range(1, 21)]
    gevent.joinall(calls, timeout=5, raise_error=True)
    assert [call.value.id for call in calls] == list(range(1, 21))
    assert pool.call_count == 40
