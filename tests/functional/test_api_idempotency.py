"""`Idempotency-Key` on the JSON API (WebTest): a repeated write answers its first response
and adds nothing; a bad or reused key is refused naming the header; keys are per runner;
and with the runs feature remote, a write whose answer was lost is sent again with its key
and the data service applies it once."""

from __future__ import annotations

import json
import uuid

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from sqlalchemy import text
from webtest import TestApp

from extracted.dataservice.app import create_app as create_dataservice
from monolith import create_app
from monolith.wiring import control, features
from shims import idempotency
from support import FAST_HASH, LOOPBACK, assert_error, basic_auth

RUN = {"name": "Tempo", "distance": 8000, "elapsed_time": 2400,
       "start_date": "2026-05-03T07:00:00"}
KEY = "0b9c8e3e-2f4e-4a59-9c5e-0b0d9c1f2a3b"


def keyed(headers: dict[str, str], key: str = KEY) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def run_rows(app, name: str = "Tempo") -> int:
    with app.extensions["runnerly_engine"].connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM runs WHERE name = :n"), {"n": name})


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


# --- a repeat answers the first response -----------------------------------------------------

def test_a_repeated_post_returns_the_same_run_and_adds_no_row(web, app, headers):
    first = web.post_json("/api/runs", RUN, headers=keyed(headers))
    again = web.post_json("/api/runs", RUN, headers=keyed(headers))
    assert first.status_int == again.status_int == 201
    assert again.json == first.json
    assert again.content_type == "application/json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert run_rows(app) == 1


def test_without_a_key_every_post_is_a_new_run(web, app, headers):
    web.post_json("/api/runs", RUN, headers=headers)
    web.post_json("/api/runs", RUN, headers=headers)
    assert run_rows(app) == 2


def test_the_body_is_compared_by_value_not_by_its_bytes(web, app, headers):
    first = web.post("/api/runs", json.dumps(RUN), headers=keyed(headers),
                     content_type="application/json")
    reordered = json.dumps(dict(reversed(list(RUN.items()))), indent=2)
    again = web.post("/api/runs", reordered, headers=keyed(headers),
                     content_type="application/json")
    assert again.json["id"] == first.json["id"] and run_rows(app) == 1


def test_a_repeated_delete_answers_204_again_not_404(web, headers):
    run_id = web.post_json("/api/runs", RUN, headers=headers).json["id"]
    for _ in range(2):
        deleted = web.delete(f"/api/runs/{run_id}", headers=keyed(headers, "delete-1"))
        assert deleted.status_int == 204 and deleted.body == b""
        assert "Content-Type" not in deleted.headers
    assert web.delete(f"/api/runs/{run_id}", headers=headers, expect_errors=True).status_int == 404


def test_a_repeated_sign_up_answers_the_same_account_not_a_conflict(web):
    body = {"email": "new@example.com", "password": "correct-horse-9"}
    first = web.post_json("/api/users", body, headers={"Idempotency-Key": "signup-1"})
    again = web.post_json("/api/users", body, headers={"Idempotency-Key": "signup-1"})
    assert first.status_int == again.status_int == 201
    assert again.json["id"] == first.json["id"]
    assert web.post_json("/api/users", body, expect_errors=True).status_int == 409


def test_a_contract_error_is_answered_again_as_it_was(web, headers):
    missing = web.put_json("/api/runs/12345", RUN, headers=keyed(headers), expect_errors=True)
    again = web.put_json("/api/runs/12345", RUN, headers=keyed(headers), expect_errors=True)
    assert missing.status_int == again.status_int == 404
    assert again.json == missing.json and again.headers["Idempotent-Replayed"] == "true"


def test_races_are_keyed_too(web, app, headers):
    race = {"name": "City 10k", "date": "2083-09-20", "distance": 10000}
    first = web.post_json("/api/races", race, headers=keyed(headers, "race-1"))
    again = web.post_json("/api/races", race, headers=keyed(headers, "race-1"))
    assert again.json["id"] == first.json["id"]
    with app.extensions["runnerly_engine"].connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM races")) == 1


# --- refused keys ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["two words", "x" * 256, "naïve", "a,b"])
def test_a_malformed_key_is_a_400_naming_the_header(web, app, headers, key):
    response = web.post_json("/api/runs", RUN, headers=keyed(headers, key), expect_errors=True)
    assert_error(response, 400, field="Idempotency-Key", mentions=["Idempotency-Key"])
    assert run_rows(app) == 0


def test_the_same_key_on_another_request_is_a_422_naming_the_header(web, app, headers):
    web.post_json("/api/runs", RUN, headers=keyed(headers))
    other_body = web.post_json("/api/runs", {**RUN, "distance": 9000}, headers=keyed(headers),
                               expect_errors=True)
    body = assert_error(other_body, 422, field="Idempotency-Key")
    assert body["error"] == "idempotency_key_reused"
    other_path = web.post_json("/api/races", {"name": "x", "date": "2083-09-20",
                                              "distance": 10000},
                               headers=keyed(headers), expect_errors=True)
    assert_error(other_path, 422, field="Idempotency-Key")
    assert run_rows(app) == 1


def test_keys_are_scoped_per_runner(web, app, make_user, api_headers, headers):
    other = api_headers(make_user("other@example.com"))
    mine = web.post_json("/api/runs", RUN, headers=keyed(headers))
    theirs = web.post_json("/api/runs", RUN, headers=keyed(other))
    assert mine.json["id"] != theirs.json["id"] and run_rows(app) == 2
    assert "Idempotent-Replayed" not in theirs.headers


def test_a_request_refused_for_its_credentials_keeps_nothing(web, app, runner):
    bad = {"Authorization": "Bearer forged", "Idempotency-Key": KEY}
    assert web.post_json("/api/runs", RUN, headers=bad, expect_errors=True).status_int == 401
    good = keyed(basic_auth(runner.email))
    assert web.post_json("/api/runs", RUN, headers=good).status_int == 201
    assert run_rows(app) == 1


# --- a crash between the write and keeping its response --------------------------------------

def test_a_write_whose_response_was_never_kept_is_still_applied_once(web, app, runner, headers):
    """The process dies after the run committed and before the response was kept: the
    client's retry runs the view again, and the run's own key answers it."""
    first = web.post_json("/api/runs", RUN, headers=keyed(headers))
    with app.extensions["runnerly_engine"].begin() as connection:
        forgotten = connection.execute(
            text("DELETE FROM turnout_idempotency WHERE key = :k"),
            {"k": idempotency.scoped(f"user:{runner.id}", KEY)}).rowcount
    assert forgotten == 1
    again = web.post_json("/api/runs", RUN, headers=keyed(headers))
    assert "Idempotent-Replayed" not in again.headers  # the view ran again...
    assert again.json == first.json  # ...and the write answered its first outcome
    assert run_rows(app) == 1


# --- the runs feature remote: the key travels to the data service ----------------------------

class LosesAnswers:
    """WSGI middleware in front of the data service: applies each add_run, then, while
    `lose` > 0, keeps the caller waiting past its read timeout instead of answering."""

    def __init__(self, app):
        self.app = app
        self.lose = 0
        self.add_run_keys: list[str] = []

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] != "/rpc/runs/add_run":
            return self.app(environ, start_response)
        self.add_run_keys.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
        answer = list(self.app(environ, start_response))  # applied, committed
        if self.lose > 0:
            self.lose -= 1
            gevent.sleep(2.0)  # the answer is lost: the caller has given up
        return answer


@pytest.fixture
def dataservice(tmp_path):
    data = create_dataservice({"TESTING": True, "RUN_DIR": str(tmp_path),
                               "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}",
                               "PASSWORD_HASH_METHOD": FAST_HASH}, guard=lambda method: None)
    wrapped = LosesAnswers(data)
    wrapped.server = WSGIServer(("127.0.0.1", 0), wrapped, log=None)
    wrapped.server.start()
    try:
        yield f"http://127.0.0.1:{wrapped.server.server_port}", wrapped, data
    finally:
        wrapped.server.stop(timeout=1)
        data.extensions["turnout_engine"].dispose()


@pytest.fixture
def remote_app(tmp_path, dataservice):
    url, _, _ = dataservice
    app = create_app({"TESTING": True, "RUN_DIR": str(tmp_path / "monolith"),
                      "SECRET_KEY": "test", "PASSWORD_HASH_METHOD": FAST_HASH,
                      "FLAGS_REFRESH": 0.0, "DATASERVICE_URL": url,
                      "REMOTE_READ_TIMEOUT": 0.5, "BREAKER_FAILURES": 100})
    with app.app_context():
        yield app


@pytest.fixture
def remote_runner(remote_app):
    """A runner on both sides (signed up in dualwrite), then the runs feature remote."""
    from contracts.accounts import Profile, SignUp

    control().store.set("runs", "dualwrite", actor="test")
    user = features().accounts.sign_up(SignUp(email=f"{uuid.uuid4().hex[:8]}@example.com",
                                              password="correct-horse-9", profile=Profile()))
    control().store.set("runs", "remote", actor="test")
    return user


def service_run_rows(dataservice, name: str = "Tempo") -> int:
    _, _, data = dataservice
    with data.extensions["turnout_engine"].connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM runs WHERE name = :n"), {"n": name})


def test_a_remote_write_whose_answer_was_lost_is_resent_with_its_key_and_applied_once(
        remote_app, remote_runner, dataservice):
    _, service, _ = dataservice
    service.lose = 1
    web = TestApp(remote_app, extra_environ=LOOPBACK)
    response = web.post_json("/api/runs", RUN, headers=keyed(basic_auth(remote_runner.email)))
    assert response.status_int == 201
    assert "runs.add_run=remote" in response.headers["X-Turnout-Route"]
    first, second = service.add_run_keys
    assert first == second and first is not None
    assert service_run_rows(dataservice) == 1


def test_after_an_unknown_outcome_the_client_retries_with_its_key_and_gets_one_run(
        remote_app, remote_runner, dataservice):
    _, service, _ = dataservice
    service.lose = 3  # every attempt of the first request loses its answer
    web = TestApp(remote_app, extra_environ=LOOPBACK)
    headers = keyed(basic_auth(remote_runner.email))
    unknown = web.post_json("/api/runs", RUN, headers=headers, expect_errors=True)
    body = assert_error(unknown, 503, mentions=["outcome is unknown", "Idempotency-Key"])
    assert body["error"] == "outcome_unknown" and int(unknown.headers["Retry-After"]) >= 1
    assert service_run_rows(dataservice) == 1  # it was applied, though nobody heard so
    retried = web.post_json("/api/runs", RUN, headers=headers)
    assert retried.status_int == 201
    assert len(set(service.add_run_keys)) == 1  # every send carried the same derived key
    assert service_run_rows(dataservice) == 1
    assert features().runs.get_run(remote_runner.id, int(retried.json["id"])).name == "Tempo"


def test_once_unknown_a_key_stays_unknown_even_when_a_later_try_is_refused_unsent(
        remote_app, remote_runner, dataservice):
    """The first try may have been applied: a later try of the same key that never reached
    the service must not say "not applied" about the write."""
    _, service, _ = dataservice
    service.lose = 3
    web = TestApp(remote_app, extra_environ=LOOPBACK)
    headers = keyed(basic_auth(remote_runner.email))
    first = web.post_json("/api/runs", RUN, headers=headers, expect_errors=True)
    assert first.json["error"] == "outcome_unknown"
    service.server.stop(timeout=1)  # now nothing listens: connections are refused
    refused_unsent = web.post_json("/api/runs", RUN, headers=headers, expect_errors=True)
    body = assert_error(refused_unsent, 503, mentions=["earlier attempt", "Idempotency-Key"])
    assert body["error"] == "outcome_unknown"
    assert int(refused_unsent.headers["Retry-After"]) >= 1
    other_key = keyed(basic_auth(remote_runner.email), "never-tried-before")
    fresh = web.post_json("/api/runs", RUN, headers=other_key, expect_errors=True)
    assert fresh.json["error"] == "unavailable" and "not applied" in fresh.json["message"]
    reused = web.post_json("/api/runs", {**RUN, "distance": 1}, headers=headers,
                           expect_errors=True)
    assert_error(reused, 422, field="Idempotency-Key")  # the key belongs to the first body


# --- the monolith's own /rpc: the caller's key reaches the side the router picks ------------

def test_the_monolith_rpc_keeps_a_callers_key_for_the_write_it_routes(app, runner,
                                                                      service_tokens):
    """A service (the Strava importer, say) resends a write to the monolith's /rpc with its
    key: the local side answers the first outcome; other arguments with it are a 422."""
    client = app.test_client()
    headers = {**service_tokens.headers(), "Idempotency-Key": "from-a-service-1"}
    run = {"name": "Tempo", "distance": 8000.0, "start_date": "2026-05-03T07:00:00",
           "elapsed_time": 2400}
    payload = {"args": {"user_id": runner.id, "run": run}}
    first = client.post("/rpc/runs/add_run", json=payload, headers=headers)
    again = client.post("/rpc/runs/add_run", json=payload, headers=headers)
    assert first.status_code == again.status_code == 200, first.json
    assert again.json == first.json and run_rows(app) == 1
    other = client.post("/rpc/runs/add_run", headers=headers, json={
        "args": {"user_id": runner.id, "run": {**run, "distance": 9000.0}}})
    assert other.status_code == 422
    assert (other.json["error"], other.json["field"]) == ("idempotency_key_reused",
                                                          "Idempotency-Key")
    assert run_rows(app) == 1


def test_the_monolith_rpc_forwards_a_callers_key_unchanged_to_the_data_service(
        remote_app, remote_runner, dataservice, service_tokens):
    _, service, _ = dataservice
    client = remote_app.test_client()
    headers = {**service_tokens.headers(), "Idempotency-Key": "from-a-service-2"}
    payload = {"args": {"user_id": remote_runner.id, "run": {
        "name": "Tempo", "distance": 8000.0, "start_date": "2026-05-03T07:00:00",
        "elapsed_time": 2400}}}
    first = client.post("/rpc/runs/add_run", json=payload, headers=headers)
    again = client.post("/rpc/runs/add_run", json=payload, headers=headers)
    assert first.status_code == again.status_code == 200, first.json
    assert again.json == first.json
    assert service.add_run_keys == ["from-a-service-2"] * 2
    assert service_run_rows(dataservice) == 1
