"""The admin JSON API (shims/admin.py) mounted on an app's own Flask app, with its own feature
and the mirror between its two sides (tests/kit/notes_app.py): who may use it, bad values
refused, moves made as safely as `turnout flags set`, every change audited."""

from __future__ import annotations

import pytest
from flask import Flask, request

from notes_app import Side
from shims.admin import admin_blueprint
from shims.breaker import CircuitBreaker
from shims.errors import Forbidden, Unauthorized
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo
from shims.flags.store import SqlFlagStore
from shims.mirror import mirror_channels
from shims.mismatches import SqlMismatchLog
from shims.service import install_json_errors

FEATURES = {"notes": FeatureInfo("notes", has_remote=True, owns_data=True),
            "search": FeatureInfo("search", has_remote=True),
            "billing": FeatureInfo("billing", has_remote=False)}
ADMIN = {"Authorization": "Bearer admin"}


def authorize() -> str:
    """The app's own check (a token, a session...): here a fixed bearer word."""
    given = request.headers.get("Authorization")
    if given is None:
        raise Unauthorized("log in first")
    if given != ADMIN["Authorization"]:
        raise Forbidden("admins only")
    return "ops@example.com"


@pytest.fixture
def store(tmp_path):
    made = SqlFlagStore.from_url(f"sqlite:///{tmp_path / 'flags.db'}", FEATURES)
    made.open()
    yield made
    made.engine.dispose()


@pytest.fixture
def sides(tmp_path):
    monolith, service = Side(tmp_path / "monolith.db"), Side(tmp_path / "service.db")
    yield monolith, service
    monolith.close()
    service.close()


@pytest.fixture
def client(store, sides):
    monolith, service = sides
    mismatches = SqlMismatchLog(store.engine)
    mismatches.create_schema()
    app = Flask("an_app")
    app.register_blueprint(admin_blueprint(
        store, FlagCache(store, refresh_interval=0), mismatches,
        {"notes": CircuitBreaker("notes")}, authorize,
        {"notes": mirror_channels("notes", monolith.sync, service.sync)}))
    install_json_errors(app)
    return app.test_client()


def by_feature(body):
    return {row["feature"]: row for row in body["features"]}


def test_every_feature_is_listed_with_its_mode_breaker_and_mirror(client):
    body = client.get("/_turnout/flags", headers=ADMIN).get_json()
    notes = by_feature(body)["notes"]
    assert (notes["mode"], notes["has_remote"], notes["owns_data"], notes["breaker"]) == \
        ("local", True, True, "closed")
    assert set(notes["mirror"]) == {"local", "remote"}
    assert by_feature(body)["search"]["mirror"] is None
    assert body["killed"] is False and body["store_readable"] is True


@pytest.mark.parametrize(("path", "method"), [("/_turnout/flags", "get"),
                                              ("/_turnout/flags/notes", "put"),
                                              ("/_turnout/kill", "post"),
                                              ("/_turnout/kill", "delete"),
                                              ("/_turnout/history", "get"),
                                              ("/_turnout/mismatches", "get")])
def test_only_whom_the_app_authorizes_may_use_it(client, store, path, method):
    anonymous = getattr(client, method)(path)
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "unauthorized"
    refused = getattr(client, method)(path, headers={"Authorization": "Bearer runner"})
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert store.history() == []


def test_a_flag_set_is_audited_with_the_actor(client):
    response = client.put("/_turnout/flags/search", json={"mode": "canary", "percent": 25},
                          headers=ADMIN)
    assert response.get_json() == {"feature": "search", "mode": "canary", "percent": 25.0}
    entry = client.get("/_turnout/history?feature=search", headers=ADMIN).get_json()["history"][0]
    assert (entry["actor"], entry["old"], entry["new"]) == \
        ("ops@example.com", "local", "canary 25%")


def test_a_feature_that_owns_data_moves_with_its_mirror(client, sides):
    monolith, service = sides
    monolith.note(monolith.author("ada@example.com"), "written before the move")
    refused = client.put("/_turnout/flags/notes", json={"mode": "remote"}, headers=ADMIN)
    assert refused.status_code == 409 and refused.get_json()["error"] == "move_refused"
    assert "turnout data copy notes" in refused.get_json()["message"]
    for mode in ("dualwrite", "live"):
        moved = client.put("/_turnout/flags/notes", json={"mode": mode, "wait": 5},
                           headers=ADMIN)
        assert moved.status_code == 200, moved.get_json()
    assert service.texts() == {"written before the move"}  # brought over before going live


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"mode": "sideways"}, "mode", "sideways"),
    ({"mode": "canary", "percent": 101}, "percent", "from 0 to 100"),
    ({"mode": "canary", "percent": "lots"}, "percent", "number"),
    ({}, "mode", "required"),
    ({"mode": "remote", "colour": "red"}, "colour", "unknown field"),
    ({"mode": "remote", "force": True}, "reason", "reason"),
    ({"mode": "remote", "wait": 3600}, "wait", "at most 60"),
])
def test_bad_values_are_refused_naming_the_field(client, store, body, field, words):
    response = client.put("/_turnout/flags/search", json=body, headers=ADMIN)
    assert response.status_code == 400
    assert response.get_json()["field"] == field and words in response.get_json()["message"]
    assert store.history() == []


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
def test_malformed_bodies_are_refused(client, raw):
    for content_type in ("application/json", "text/plain"):
        response = client.put("/_turnout/flags/search", data=raw, headers=ADMIN,
                              content_type=content_type)
        assert response.status_code == 400, (raw, content_type)
        assert response.get_json()["error"] == "invalid"


def test_unknown_features_and_features_without_a_remote_side_are_refused(client):
    unknown = client.put("/_turnout/flags/payroll", json={"mode": "remote"}, headers=ADMIN)
    assert unknown.status_code == 400 and "unknown feature 'payroll'" in \
        unknown.get_json()["message"]
    local_only = client.put("/_turnout/flags/billing", json={"mode": "remote"}, headers=ADMIN)
    assert local_only.status_code == 400
    assert "no remote implementation" in local_only.get_json()["message"]


def test_the_kill_switch_sends_everything_local_and_keeps_the_flags(client, store):
    client.put("/_turnout/flags/search", json={"mode": "remote"}, headers=ADMIN)
    assert client.post("/_turnout/kill", headers=ADMIN).get_json() == {"killed": True}
    assert store.snapshot().killed is True
    assert client.delete("/_turnout/kill", headers=ADMIN).get_json() == {"killed": False}
    assert store.snapshot().flag("search").mode == "remote"


@pytest.mark.parametrize("path", ["/_turnout/history?limit=0", "/_turnout/history?limit=x",
                                  "/_turnout/mismatches?feature=payroll",
                                  "/_turnout/mismatches?limit=501"])
def test_bad_queries_are_refused(client, path):
    assert client.get(path, headers=ADMIN).status_code == 400


def test_mismatches_start_empty(client):
    assert client.get("/_turnout/mismatches", headers=ADMIN).get_json() == {"mismatches": []}
