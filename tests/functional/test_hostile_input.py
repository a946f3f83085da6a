"""Hostile bodies on every app: a lone surrogate, deep nesting and an oversize body are each
a 4xx naming the field, the depth or the limit, never a 500 (issue 10). One loader,
shims/json_input.py, serves the monolith's /api, its /rpc, every service's /rpc and the
admin API; the body limit is set on every app the kit builds or wraps."""

from __future__ import annotations

import json

import pytest
from webtest import TestApp

from contract.support import dataservice_app
from extracted.reports.app import create_app as create_reports
from extracted.stravaimport.app import create_app as create_stravaimport
from shims.json_input import MAX_DEPTH
from shims.tokendealer.app import create_app as create_tokendealer
from shims.transport import WsgiTransport
from support import LOOPBACK, SessionTokens, assert_error, basic_auth

LONE = "\ud800"  # json.dumps writes it as the escape "\ud800", as an attacker would send it
RUN = {"name": "Tempo", "distance": 10000, "start_date": "2026-05-17T07:30:00Z",
       "elapsed_time": 2700}
TOO_DEEP = "[" * (MAX_DEPTH + 8) + "]" * (MAX_DEPTH + 8)


def post_raw(web, path, raw, headers=None):
    return web.post(path, raw, headers=headers or {}, content_type="application/json",
                    expect_errors=True)


# --- the monolith's public API -------------------------------------------------------------

@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


@pytest.fixture
def headers(runner, api_headers):
    return api_headers(runner)


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("post", "/api/runs", {**RUN, "name": LONE}, "name"),
    ("post", "/api/runs", {**RUN, f"x{LONE}": 1}, "x\\ud800"),  # a key: named, escaped
    ("patch", "/api/me", {"first_name": f"Ada{LONE}"}, "first_name"),
    ("put", "/api/me/strava", {"strava_token": LONE}, "strava_token"),
    ("post", "/api/races", {"name": LONE, "date": "2027-04-04", "distance": 42195}, "name"),
])
def test_a_lone_surrogate_in_any_api_field_is_a_400_naming_it(web, headers, method, path,
                                                              body, field):
    response = getattr(web, method)(path, json.dumps(body), headers=headers,
                                    content_type="application/json", expect_errors=True)
    assert_error(response, 400, field=field, mentions=["not valid Unicode"])


def test_sign_up_with_a_lone_surrogate_is_a_400(web):
    response = post_raw(web, "/api/users", json.dumps({"email": f"a{LONE}@example.com",
                                                       "password": "long enough 1"}))
    assert_error(response, 400, field="email", mentions=["not valid Unicode"])


def test_deep_nesting_on_the_api_is_a_400_naming_the_depth(web, headers):
    response = post_raw(web, "/api/runs", '{"name": ' + TOO_DEEP + "}", headers)
    body = assert_error(response, 400, mentions=[f"deeper than {MAX_DEPTH}"])
    assert body["field"] == "name" + "[0]" * (MAX_DEPTH - 1)  # where the limit was passed


def test_an_oversize_api_body_is_a_413_naming_the_limit(web, headers, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = post_raw(web, "/api/runs", json.dumps({**RUN, "name": "x" * limit}), headers)
    assert_error(response, 413, mentions=[f"{limit} bytes"])


def test_a_form_field_with_a_lone_surrogate_is_refused_not_a_500():
    """Forms and query strings reach fields.py; werkzeug decodes them with replacement
    characters, but a parser must refuse a surrogate whatever brought it."""
    from shims import fields
    from shims.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        fields.text({"name": LONE}, "name")
    assert refused.value.field == "name"
    with pytest.raises(ValidationError):
        fields.password({"password": "12345678" + LONE})


# --- /rpc: the monolith's and every service's -----------------------------------------------

@pytest.fixture
def rpc_apps(app, tmp_path):
    data = dataservice_app(tmp_path / "data")
    tokens = SessionTokens()
    config = {"RUN_DIR": str(tmp_path)}
    apps = {"monolith": app, "dataservice": data,
            "reports": create_reports(config, data_transport=WsgiTransport(data, tokens=tokens)),
            "stravaimport": create_stravaimport(config,
                                                data_transport=WsgiTransport(data,
                                                                             tokens=tokens))}
    yield {name: TestApp(served, extra_environ=LOOPBACK) for name, served in apps.items()}
    data.extensions["turnout_engine"].dispose()


CALLS = {  # one method of each app, and a string argument a surrogate can go into
    "monolith": ("/rpc/runs/add_run", {"user_id": 1, "run": {**RUN, "name": LONE}},
                 "args.run.name"),
    "dataservice": ("/rpc/accounts/authenticate", {"email": LONE, "password": "x"},
                    "args.email"),
    "reports": ("/rpc/reports/monthly_report", {"user_id": 1, "year": 2026, "month": LONE},
                "args.month"),
    "stravaimport": ("/rpc/strava/import_user", {"user_id": LONE}, "args.user_id"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_rpc_refuses_a_lone_surrogate_naming_the_argument(rpc_apps, name):
    path, args, field = CALLS[name]
    response = post_raw(rpc_apps[name], path, json.dumps({"args": args}),
                        SessionTokens().headers())
    assert_error(response, 400, field=field, mentions=["not valid Unicode"])


@pytest.mark.parametrize("name", sorted(CALLS))
def test_rpc_refuses_deep_nesting_naming_the_depth(rpc_apps, name):
    path, _, _ = CALLS[name]
    response = post_raw(rpc_apps[name], path, '{"args": {"user_id": ' + TOO_DEEP + "}}",
                        SessionTokens().headers())
    assert_error(response, 400, mentions=[f"deeper than {MAX_DEPTH}"])


@pytest.mark.parametrize("name", sorted(CALLS))
def test_rpc_refuses_an_oversize_body_with_a_413_naming_the_limit(rpc_apps, name):
    """The reports and importer services read a 100 MiB body before the kit set a limit."""
    path, _, _ = CALLS[name]
    limit = rpc_apps[name].app.config["MAX_CONTENT_LENGTH"]
    assert limit and limit <= 16 * 1024 * 1024
    response = post_raw(rpc_apps[name], path, json.dumps({"args": {"pad": "x" * limit}}),
                        SessionTokens().headers())
    assert_error(response, 413, mentions=[f"{limit} bytes"])


def test_the_token_dealer_refuses_an_oversize_body_with_a_413(tmp_path):
    dealer = TestApp(create_tokendealer({"RUN_DIR": str(tmp_path)}), extra_environ=LOOPBACK)
    response = dealer.post("/oauth/token", "grant_type=" + "x" * 20_000,
                           content_type="application/x-www-form-urlencoded", expect_errors=True)
    assert_error(response, 413, mentions=[f"{16 * 1024} bytes"])


# --- the admin API ---------------------------------------------------------------------------

@pytest.fixture
def admin_headers(make_user):
    return basic_auth(make_user("boss@example.com", admin=True).email)


@pytest.mark.parametrize(("raw", "field", "mentions"), [
    (json.dumps({"mode": LONE}), "mode", "not valid Unicode"),
    ('{"mode": ' + TOO_DEEP + "}", "mode" + "[0]" * (MAX_DEPTH - 1), f"deeper than {MAX_DEPTH}"),
])
def test_the_admin_api_refuses_hostile_bodies(web, admin_headers, raw, field, mentions):
    response = web.put("/_turnout/flags/runs", raw, headers=admin_headers,
                       content_type="application/json", expect_errors=True)
    assert_error(response, 400, field=field, mentions=[mentions])
