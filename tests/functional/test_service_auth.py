"""Every service refuses calls without a valid dealer token for it, with a JSON 401/403."""

from __future__ import annotations

import time

import pytest
from webtest import TestApp

from extracted.dataservice.app import create_app as create_dataservice
from extracted.reports.app import create_app as create_reports
from extracted.stravaimport.app import create_app as create_stravaimport
from monolith import create_app as create_monolith
from support import LOOPBACK, FAST_HASH, SESSION_KID, mint_token

CALLS = {  # service: (audience, path of a read, a scope it does not need)
    "dataservice": ("dataservice", "/rpc/accounts/list_users", "reports:read"),
    "stravaimport": ("stravaimport", "/rpc/strava/import_all", "reports:read"),
    "reports": ("reports", "/rpc/reports/monthly_report", "strava:write"),
    "monolith": ("monolith", "/rpc/accounts/list_users", "reports:read"),
}


@pytest.fixture(params=sorted(CALLS))
def service(request, tmp_path):
    name = request.param
    config = {"RUN_DIR": str(tmp_path), "PASSWORD_HASH_METHOD": FAST_HASH,
              "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}",
              "SECRET_KEY": "test"}
    factory = {"dataservice": create_dataservice, "stravaimport": create_stravaimport,
               "reports": create_reports, "monolith": create_monolith}[name]
    return name, TestApp(factory(config), extra_environ=LOOPBACK)


def token(audience: str, scope: str, **claims) -> str:
    return mint_token(kid=SESSION_KID, audience=audience, scope=scope, now=time.time(),
                      **claims)


def call(web: TestApp, path: str, bearer: str | None):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return web.post_json(path, {"args": {}}, headers=headers, expect_errors=True)


def test_no_token_is_401_invalid_token(service):
    name, web = service
    response = call(web, CALLS[name][1], None)
    assert response.status_int == 401 and response.json["error"] == "invalid_token"


def test_a_token_for_another_audience_is_401(service):
    name, web = service
    audience = "reports" if name != "reports" else "dataservice"
    response = call(web, CALLS[name][1], token(audience, "accounts:read reports:read "
                                                         "strava:write"))
    assert response.status_int == 401 and response.json["error"] == "invalid_token"


def test_an_expired_or_forged_token_is_401(service):
    name, web = service
    audience, path, _ = CALLS[name]
    expired = token(audience, "accounts:read", iat=int(time.time()) - 900,
                    nbf=int(time.time()) - 900, exp=int(time.time()) - 600)
    assert call(web, path, expired).status_int == 401
    forged = token(audience, "accounts:read")[:-6] + "AAAAAA"
    assert call(web, path, forged).status_int == 401


def test_a_token_without_the_methods_scope_is_403_naming_it(service):
    name, web = service
    audience, path, other_scope = CALLS[name]
    response = call(web, path, token(audience, other_scope))
    assert response.status_int == 403 and response.json["error"] == "insufficient_scope"
    needed = path.split("/")[2] + ":"
    assert needed in response.json["message"]


def test_health_and_metrics_need_no_token(service):
    _, web = service
    assert web.get("/healthz").status_int == 200
    assert web.get("/metrics").status_int == 200


def test_health_and_metrics_refuse_callers_beyond_loopback(service):
    _, web = service
    for path in ("/healthz", "/metrics"):
        response = web.get(path, extra_environ={"REMOTE_ADDR": "192.0.2.7"}, expect_errors=True)
        assert response.status_int == 403 and "TURNOUT_OPS_PUBLIC" in response.json["message"]


def test_ops_endpoints_open_up_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNOUT_OPS_PUBLIC", "true")
    web = TestApp(create_dataservice({"RUN_DIR": str(tmp_path),
                                      "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}))
    assert web.get("/metrics", extra_environ={"REMOTE_ADDR": "192.0.2.7"}).status_int == 200
