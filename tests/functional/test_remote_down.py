"""The monolith with the runs feature remote and nothing listening where the data service
should be: reads fall back to local, writes get a clear 503 with Retry-After and are written
nowhere, never a hang or a 500."""

from __future__ import annotations

import pytest
from webtest import TestApp

from monolith import create_app
from monolith.wiring import control, features
from support import LOOPBACK, FAST_HASH, basic_auth, free_port

RUN = {"name": "Tempo", "distance": 8000, "elapsed_time": 2400,
       "start_date": "2026-11-02T07:00:00"}


@pytest.fixture
def app(tmp_path):
    """Like the shared fixture, but the data service's port has nobody listening."""
    app = create_app({"TESTING": True, "RUN_DIR": str(tmp_path), "SECRET_KEY": "test",
                      "PASSWORD_HASH_METHOD": FAST_HASH, "FLAGS_REFRESH": 0.0,
                      "DATASERVICE_URL": f"http://127.0.0.1:{free_port()}"})
    with app.app_context():
        yield app


@pytest.fixture
def web(app):
    return TestApp(app, extra_environ=LOOPBACK)


@pytest.fixture
def runner(make_user):
    user = make_user()
    control().store.set("runs", "remote", actor="test")
    return user


def remote_calls() -> float:
    samples = control().metrics.registry.collect()
    return sum(s.value for metric in samples for s in metric.samples
               if s.name == "turnout_calls_total" and s.labels["side"] == "remote")


def test_reads_fall_back_to_local_and_the_breaker_stops_the_calls(web, runner):
    for _ in range(6):
        response = web.get("/api/runs?year=2026&month=11", headers=basic_auth(runner.email))
        assert response.status_int == 200
        assert "=local" in response.headers["X-Turnout-Route"]
    assert control().breakers["runs"].state == "open"
    tried = remote_calls()
    web.get("/api/runs?year=2026&month=11", headers=basic_auth(runner.email))
    assert remote_calls() == tried, "an open breaker must not call the service"


def test_writes_get_503_with_retry_after_and_are_written_nowhere(web, runner):
    response = web.post_json("/api/runs", RUN, headers=basic_auth(runner.email),
                             expect_errors=True)
    assert response.status_int == 503
    assert response.json["error"] == "unavailable"  # refused: nothing was sent
    assert "not applied" in response.json["message"]
    assert int(response.headers["Retry-After"]) >= 1
    control().store.set("runs", "local", actor="test")
    assert features().runs.list_runs(runner.id, 2026, 11) == []


def test_a_refused_write_retried_with_its_key_is_applied_once(web, runner):
    """A 503 is never kept as the key's answer: the retry runs, once."""
    headers = {**basic_auth(runner.email), "Idempotency-Key": "retry-after-503"}
    assert web.post_json("/api/runs", RUN, headers=headers, expect_errors=True).status_int == 503
    control().store.set("runs", "local", actor="test")
    first = web.post_json("/api/runs", RUN, headers=headers)
    again = web.post_json("/api/runs", RUN, headers=headers)
    assert first.status_int == again.status_int == 201
    assert again.json["id"] == first.json["id"]
    assert len(features().runs.list_runs(runner.id, 2026, 11)) == 1
