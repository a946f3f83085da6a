"""The admin JSON API under /_turnout/: admins only, bad values refused, every change audited."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from webtest import TestApp

from monolith import create_app
from monolith.wiring import control
from support import FAST_HASH, LOOPBACK, basic_auth


@pytest.fixture
def admin(make_user):
    return make_user("boss@example.com", admin=True)


@pytest.fixture
def admin_headers(admin):
    return basic_auth(admin.email)


def flags_by_feature(body):
    return {row["feature"]: row for row in body["features"]}


def test_admin_reads_every_feature_with_its_mode_and_breaker(web, admin_headers):
    body = web.get("/_turnout/flags", headers=admin_headers).json
    runs = flags_by_feature(body)["runs"]
    assert (runs["mode"], runs["has_remote"], runs["owns_data"], runs["breaker"]) == \
        ("local", True, True, "closed")
    assert body["killed"] is False
    assert set(flags_by_feature(body)) == {"runs", "strava", "reports", "races"}


@pytest.mark.parametrize("path,method", [("/_turnout/flags", "get"),
                                         ("/_turnout/flags/runs", "put"),
                                         ("/_turnout/kill", "post"), ("/_turnout/kill", "delete"),
                                         ("/_turnout/history", "get"),
                                         ("/_turnout/mismatches", "get")])
def test_only_an_admin_may_use_it(web, make_user, path, method):
    runner = make_user()
    anonymous = getattr(web, method)(path, expect_errors=True)
    assert anonymous.status_int == 401 and anonymous.json["error"] == "unauthorized"
    refused = getattr(web, method)(path, headers=basic_auth(runner.email), expect_errors=True)
    assert refused.status_int == 403 and refused.json["error"] == "forbidden"
    assert control().store.history() == []


def test_a_browser_session_cookie_does_not_authenticate_the_admin_api(web, admin):
    login = web.get("/login")
    login.form["email"], login.form["password"] = admin.email, "correct-horse-9"
    login.form.submit()
    response = web.put_json("/_turnout/flags/runs", {"mode": "remote"}, expect_errors=True)
    assert response.status_int == 401
    assert control().store.snapshot().flag("runs").mode == "local"


def test_setting_a_flag_is_served_and_audited_with_the_admin_as_actor(web, admin_headers):
    response = web.put_json("/_turnout/flags/runs", {"mode": "dualwrite"}, headers=admin_headers)
    assert response.json == {"feature": "runs", "mode": "dualwrite", "percent": 0.0}
    listed = flags_by_feature(web.get("/_turnout/flags", headers=admin_headers).json)["runs"]
    assert listed["mode"] == "dualwrite"
    assert set(listed["mirror"]) == {"local", "remote"}  # each direction's backlog, or why not
    entry = web.get("/_turnout/history?feature=runs", headers=admin_headers).json["history"][0]
    assert (entry["actor"], entry["old"], entry["new"]) == \
        ("boss@example.com", "local", "dualwrite")


def test_a_move_that_could_lose_data_is_refused_with_what_to_run(web, admin_headers):
    response = web.put_json("/_turnout/flags/runs", {"mode": "canary", "percent": 30},
                            headers=admin_headers, expect_errors=True)
    assert response.status_int == 409 and response.json["error"] == "move_refused"
    assert "turnout data copy runs" in response.json["message"]
    web.put_json("/_turnout/flags/runs", {"mode": "dualwrite"}, headers=admin_headers)
    # No data service runs here: the monolith's changes cannot reach it, so it cannot answer.
    response = web.put_json("/_turnout/flags/runs", {"mode": "live", "wait": 0},
                            headers=admin_headers, expect_errors=True)
    assert response.status_int == 409 and "could not be brought" in response.json["message"]
    assert control().store.snapshot().flag("runs").mode == "dualwrite"


def test_a_forced_move_needs_a_reason_and_is_audited(web, admin_headers):
    refused = web.put_json("/_turnout/flags/runs", {"mode": "remote", "force": True},
                           headers=admin_headers, expect_errors=True)
    assert refused.status_int == 400 and refused.json["field"] == "reason"
    web.put_json("/_turnout/flags/runs", {"mode": "canary", "percent": 30, "force": True,
                                          "reason": "rehearsal"}, headers=admin_headers)
    entry = web.get("/_turnout/history?feature=runs", headers=admin_headers).json["history"][0]
    assert (entry["actor"], entry["new"]) == ("boss@example.com (forced: rehearsal)",
                                              "canary 30%")


@pytest.mark.parametrize("body,field,words", [
    ({"mode": "warp"}, "mode", "unknown mode"),
    ({"mode": "canary"}, "percent", "needs a percentage"),
    ({"mode": "canary", "percent": 101}, "percent", "from 0 to 100"),
    ({"mode": "canary", "percent": -1}, "percent", "from 0 to 100"),
    ({"mode": "canary", "percent": "lots"}, "percent", "number"),
    ({"mode": "canary", "percent": True}, "percent", "number"),
    ({"mode": "remote", "percent": 30}, "percent", "only applies to mode 'canary'"),
    ({"mode": 3}, "mode", "string"),
    ({}, "mode", "required"),
    ({"mode": "remote", "colour": "red"}, "colour", "unknown field"),
    ({"mode": "remote", "force": "maybe"}, "force", "true or false"),
    ({"mode": "remote", "wait": 3600}, "wait", "at most 60"),
])
def test_bad_flag_values_are_refused_and_nothing_changes(web, admin_headers, body, field, words):
    response = web.put_json("/_turnout/flags/runs", body, headers=admin_headers,
                            expect_errors=True)
    assert response.status_int == 400
    assert response.json["field"] == field and words in response.json["message"]
    assert control().store.history() == []


def test_unknown_feature_and_feature_without_remote_are_refused(web, admin_headers):
    unknown = web.put_json("/_turnout/flags/billing", {"mode": "remote"}, headers=admin_headers,
                           expect_errors=True)
    assert unknown.status_int == 400 and "unknown feature 'billing'" in unknown.json["message"]
    no_remote = web.put_json("/_turnout/flags/races", {"mode": "remote"}, headers=admin_headers,
                             expect_errors=True)
    assert no_remote.status_int == 400 and "no remote implementation" in no_remote.json["message"]
    assert control().store.history() == []


def test_malformed_bodies_are_refused(web, admin_headers):
    for raw in ("not json", "[1, 2]", ""):
        response = web.put("/_turnout/flags/runs", raw, headers=admin_headers,
                           content_type="application/json", expect_errors=True)
        assert response.status_int == 400, raw
        assert response.json["error"] == "invalid"


def test_kill_switch_sends_every_feature_local_and_keeps_the_flags(web, admin_headers):
    web.put_json("/_turnout/flags/runs", {"mode": "remote", "force": True, "reason": "test"},
                 headers=admin_headers)
    assert web.post("/_turnout/kill", headers=admin_headers).json == {"killed": True}
    body = web.get("/_turnout/flags", headers=admin_headers).json
    assert body["killed"] is True and flags_by_feature(body)["runs"]["mode"] == "remote"
    served = web.get("/healthz").json["flags"]
    assert served["killed"] is True
    assert web.delete("/_turnout/kill", headers=admin_headers).json == {"killed": False}
    kills = web.get("/_turnout/history?feature=*", headers=admin_headers).json["history"]
    assert [(e["old"], e["new"]) for e in kills] == [("killed", "live"), ("live", "killed")]


def test_history_and_mismatches_refuse_bad_queries(web, admin_headers):
    for path in ("/_turnout/history?limit=0", "/_turnout/history?limit=abc",
                 "/_turnout/history?feature=billing", "/_turnout/mismatches?feature=billing",
                 "/_turnout/mismatches?limit=100000"):
        response = web.get(path, headers=admin_headers, expect_errors=True)
        assert response.status_int == 400, path
        assert response.json["message"], path


def test_mismatches_start_empty(web, admin_headers):
    assert web.get("/_turnout/mismatches", headers=admin_headers).json == {"mismatches": []}


def test_metrics_are_prometheus_text(web):
    response = web.get("/metrics")
    assert response.content_type.startswith("text/plain")
    assert "turnout_calls_total" in response.text


# --- a damaged or restored flag store (issue 8) ---------------------------------------------

# The stores here have no data service to drain into: a move to a remote stage is forced.
FORCED_REMOTE = {"mode": "remote", "force": True, "reason": "test"}


def test_a_damaged_store_is_a_503_naming_the_file_and_the_kill_still_works(web, app,
                                                                           admin_headers):
    web.put_json("/_turnout/flags/runs", FORCED_REMOTE, headers=admin_headers)
    flags_db = Path(app.config["RUN_DIR"]) / "flags.db"
    flags_db.write_bytes(b"not a database! " * 2048)
    response = web.get("/_turnout/flags", headers=admin_headers, expect_errors=True)
    assert response.status_int == 503
    assert response.json["error"] == "flag_store_unavailable"
    assert str(flags_db) in response.json["message"]
    served = web.get("/healthz").json["flags"]
    assert served["store_readable"] is False and "not a SQLite database" in \
        served["store_problem"]
    assert served["modes"]["runs"] == "remote"  # its last good flags

    killed = web.post("/_turnout/kill", headers=admin_headers).json
    assert killed["killed"] is True and "started a new store" in killed["note"]
    served = web.get("/healthz").json["flags"]  # this worker serves it at once
    assert served["killed"] is True and served["store_readable"] is True


def test_a_change_over_a_store_restored_by_hand_is_a_409(web, app, admin_headers):
    flags_db = Path(app.config["RUN_DIR"]) / "flags.db"
    web.put_json("/_turnout/flags/runs", {**FORCED_REMOTE, "mode": "rampdown"},
                 headers=admin_headers)
    shutil.copyfile(flags_db, flags_db.with_name("backup.db"))
    web.put_json("/_turnout/flags/runs", FORCED_REMOTE, headers=admin_headers)
    shutil.copyfile(flags_db.with_name("backup.db"), flags_db)
    response = web.put_json("/_turnout/flags/reports", {"mode": "remote"},
                            headers=admin_headers, expect_errors=True)
    assert response.status_int == 409 and response.json["error"] == "flag_store_restored"
    assert "turnout flags repair" in response.json["message"]
    served = web.get("/healthz").json["flags"]
    assert served["modes"]["runs"] == "remote"  # never back to the copy
    assert served["store_readable"] is False and "older than version" in served["store_problem"]
    assert web.post("/_turnout/kill", headers=admin_headers).json["killed"] is True


def test_a_change_through_the_admin_api_is_served_at_once_by_the_worker_that_made_it(
        tmp_path, admin_headers, app):
    """Other workers take a change up at their next look (TURNOUT_FLAGS_REFRESH); the one
    that made it serves it before it answers, however long the refresh interval."""
    slow = create_app({**{key: app.config[key] for key in ("RUN_DIR", "DATABASE_URL",
                                                           "SECRET_KEY", "STRAVA_URL")},
                       "TESTING": True, "PASSWORD_HASH_METHOD": FAST_HASH,
                       "FLAGS_REFRESH": 3600.0})
    web = TestApp(slow, extra_environ=LOOPBACK)
    assert web.get("/healthz").json["flags"]["killed"] is False  # its one look for an hour
    web.post("/_turnout/kill", headers=admin_headers)
    assert web.get("/healthz").json["flags"]["killed"] is True
    web.delete("/_turnout/kill", headers=admin_headers)
    web.put_json("/_turnout/flags/runs", {"mode": "shadow"}, headers=admin_headers)
    served = web.get("/healthz").json["flags"]
    assert served["killed"] is False and served["modes"]["runs"] == "shadow"
