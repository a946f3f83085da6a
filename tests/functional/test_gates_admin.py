"""The admin API's gated moves, guard switches and evidence on Runnerly (shims/gates/api.py):
what a dashboard reads, advances refused with every failed gate, forced and audited,
rollbacks, and bad input refused naming the field.

No service runs here: `reports` (no data of its own) in shadow calls a reports service
that refuses connections, which is exactly the evidence that must stop an advance."""

from __future__ import annotations

import pytest
from webtest import TestApp

from monolith.wiring import control
from shims.extension import state
from support import LOOPBACK, basic_auth, runnerly_app


@pytest.fixture
def project(tmp_path):
    """The project file whose [gates] and [guard] the app's workers follow."""
    path = tmp_path / "turnout.toml"
    path.write_text('registry = "monolith.wiring:REGISTRY"\n'
                    "[gates]\nwindow = 120\nmin_calls = 3\nmin_comparisons = 3\n"
                    "[gates.runs]\ncanary_steps = [10, 50]\n"
                    "[guard]\nenabled = false\n")
    return path


@pytest.fixture
def app(tmp_path, project):
    with runnerly_app(tmp_path, PROJECT=str(project)).app_context() as context:
        yield context.app


@pytest.fixture
def web(app):
    return TestApp(app, extra_environ=LOOPBACK)


@pytest.fixture
def admin_headers(make_user):
    return basic_auth(make_user("boss@example.com", admin=True).email)


@pytest.fixture
def runner_headers(make_user, api_headers):
    return api_headers(make_user("runner@example.com"))


def by_feature(body):
    return {row["feature"]: row for row in body["features"]}


def read_reports(web, headers, times=4):
    for _ in range(times):
        web.get("/api/reports/monthly?year=2026&month=5", headers=headers)
    state().drain_shadows()
    control().flusher.flush()


def test_the_evidence_lists_every_feature_with_its_figures_and_next_move(web, admin_headers,
                                                                         runner_headers):
    web.get("/api/runs?year=2026&month=5", headers=runner_headers)
    control().flusher.flush()
    body = web.get("/_turnout/evidence", headers=admin_headers).json
    assert body["windows"] == [60, 900] and body["killed"] is False
    features = by_feature(body)
    assert set(features) == {"runs", "strava", "reports", "races"}
    runs = features["runs"]
    assert (runs["stage"], runs["owns_data"], runs["guard"]) == ("local", True,
                                                                 {"enabled": False})
    minute = runs["evidence"]["60"]
    assert minute["local"]["calls"] >= 1 and minute["remote"]["calls"] == 0
    assert minute["local"]["p99_ms"] is not None and minute["remote"]["p99_ms"] is None
    assert {m["method"] for m in minute["methods"]} >= {"runs.list_runs"}
    assert runs["next"]["advance"] == {"to": "dualwrite", "mode": "dualwrite", "percent": 0.0,
                                       "window_seconds": 120, "passed": True, "gates": []}
    assert runs["next"]["rollback"] is None
    assert features["races"]["next"] is None  # no remote side: nowhere to go
    one = web.get("/_turnout/evidence?feature=reports&window=30", headers=admin_headers).json
    assert [f["feature"] for f in one["features"]] == ["reports"]
    assert list(one["features"][0]["evidence"]) == ["30"]


def test_an_advance_its_gates_refuse_is_a_422_with_every_gate(web, admin_headers,
                                                              runner_headers):
    moved = web.post("/_turnout/flags/reports/advance", headers=admin_headers)
    assert moved.json == {"feature": "reports", "mode": "shadow", "percent": 0.0}
    read_reports(web, runner_headers)  # every shadow fails: the service is not there
    refused = web.post_json("/_turnout/flags/reports/advance", {}, headers=admin_headers,
                            expect_errors=True)
    assert refused.status_int == 422
    body = refused.json
    assert (body["error"], body["from"], body["to"]) == ("gates_failed", "shadow", "canary 5%")
    failed = {gate["gate"]: gate for gate in body["failed"]}
    assert set(failed) >= {"shadow_comparisons", "remote_error_rate"}
    assert failed["remote_error_rate"]["observed"] == 1.0
    assert "100.00% of" in failed["remote_error_rate"]["detail"]
    assert control().store.snapshot().flag("reports").mode == "shadow"
    shown = by_feature(web.get("/_turnout/evidence", headers=admin_headers).json)["reports"]
    assert shown["next"]["advance"]["passed"] is False
    assert shown["evidence"]["60"]["shadow"]["errors"] >= 4


def test_a_forced_advance_is_audited_and_a_rollback_goes_back_one_stage(web, admin_headers):
    web.post("/_turnout/flags/reports/advance", headers=admin_headers)
    forced = web.post_json("/_turnout/flags/reports/advance",
                           {"force": True, "reason": "rehearsal"}, headers=admin_headers)
    assert forced.json["mode"] == "canary" and forced.json["percent"] == 5.0
    history = web.get("/_turnout/history?feature=reports", headers=admin_headers).json["history"]
    assert (history[0]["actor"], history[0]["new"]) == \
        ("boss@example.com (forced past gates: rehearsal)", "canary 5%")
    back = web.post("/_turnout/flags/reports/rollback", headers=admin_headers).json
    assert back["mode"] == "shadow"
    web.post("/_turnout/flags/reports/rollback", headers=admin_headers)
    at_start = web.post("/_turnout/flags/reports/rollback", headers=admin_headers,
                        expect_errors=True)
    assert at_start.status_int == 409 and at_start.json["error"] == "no_further_stage"


def test_the_guard_is_switched_per_feature_and_audited(web, admin_headers):
    switched = web.put_json("/_turnout/guard/reports", {"enabled": True}, headers=admin_headers)
    assert switched.json == {"feature": "reports", "enabled": True, "was": False}
    entry = web.get("/_turnout/history?feature=reports", headers=admin_headers).json["history"][0]
    assert (entry["actor"], entry["old"], entry["new"]) == \
        ("boss@example.com", "guard off", "guard on")
    shown = by_feature(web.get("/_turnout/evidence", headers=admin_headers).json)
    assert shown["reports"]["guard"] == {"enabled": True}
    assert shown["runs"]["guard"] == {"enabled": False}


@pytest.mark.parametrize(("method", "path", "body", "field", "words"), [
    ("get", "/_turnout/evidence?window=soon", None, "window", "lengths in seconds"),
    ("get", "/_turnout/evidence?window=0", None, "window", "from 1"),
    ("get", "/_turnout/evidence?window=60,7200", None, "window", "to 3600"),  # not kept
    ("get", "/_turnout/evidence?feature=billing", None, "feature", "unknown feature"),
    ("post", "/_turnout/flags/reports/advance", {"force": "maybe"}, "force", "true or false"),
    ("post", "/_turnout/flags/reports/advance", {"force": True}, "reason", "reason"),
    ("post", "/_turnout/flags/reports/advance", {"colour": "red"}, "colour", "unknown field"),
    ("post", "/_turnout/flags/reports/advance", {"window": -5}, "window", "at least 1"),
    ("post", "/_turnout/flags/reports/rollback", {"wait": 3600}, "wait", "at most 60"),
    ("post", "/_turnout/flags/billing/advance", {}, "feature", "unknown feature"),
    ("put", "/_turnout/guard/reports", {}, "enabled", "required"),
    ("put", "/_turnout/guard/reports", {"enabled": "sometimes"}, "enabled", "true or false"),
    ("put", "/_turnout/guard/races", {"enabled": True}, "feature", "no remote side"),
])
def test_bad_input_is_refused_naming_the_field(web, admin_headers, method, path, body, field,
                                               words):
    send = getattr(web, f"{method}_json") if body is not None else getattr(web, method)
    response = send(path, body, headers=admin_headers, expect_errors=True) \
        if body is not None else send(path, headers=admin_headers, expect_errors=True)
    assert response.status_int == 400, response.body
    assert response.json["field"] == field and words in response.json["message"]
    assert control().store.history() == []


@pytest.mark.parametrize(("path", "method"), [("/_turnout/evidence", "get"),
                                              ("/_turnout/flags/reports/advance", "post"),
                                              ("/_turnout/flags/reports/rollback", "post"),
                                              ("/_turnout/guard/reports", "put")])
def test_only_an_admin_may_use_them(web, make_user, path, method):
    anonymous = getattr(web, method)(path, expect_errors=True)
    assert anonymous.status_int == 401
    runner = make_user()
    refused = getattr(web, method)(path, headers=basic_auth(runner.email), expect_errors=True)
    assert refused.status_int == 403
    assert control().store.history() == []


def test_a_wrong_gate_in_the_project_file_stops_the_app_naming_the_key(tmp_path):
    from shims.settings import ConfigError

    path = tmp_path / "turnout.toml"
    path.write_text('registry = "monolith.wiring:REGISTRY"\n[gates.runs]\nmax_error_rate = 5\n')
    with pytest.raises(ConfigError, match=r"`gates\.runs\.max_error_rate` must be a number "
                                          r"from 0 to 1, got 5"):
        runnerly_app(tmp_path, PROJECT=str(path))
