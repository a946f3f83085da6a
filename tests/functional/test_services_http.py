"""The Strava importer and the reports service as HTTP apps (WebTest): health, metrics, the
OpenAPI document, and every kind of bad request answered as JSON with its status, never a 500.

Each app's data calls go to the data service app in this process, on a fresh database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from webtest import TestApp

from extracted.dataservice.app import create_app as create_dataservice
from extracted.reports.app import create_app as create_reports
from extracted.stravaimport.app import create_app as create_stravaimport
from shims.contract import ContractSpec
from contracts.accounts import Profile, RemoteAccounts, SignUp
from contracts.reports import REPORTS
from contracts.strava import STRAVA
from shims.transport import WsgiTransport
from support import LOOPBACK, FAST_HASH, PASSWORD, SessionTokens, free_port


@dataclass(frozen=True)
class Service:
    name: str
    create: Any
    spec: ContractSpec
    method: str  # a method taking user_id
    args: dict[str, Any]  # its other arguments


def AuthorizedTestApp(app):
    """WebTest with the session's service token on every request, as a real caller sends."""
    token = SessionTokens().headers()["Authorization"]
    return TestApp(app, extra_environ={"HTTP_AUTHORIZATION": token, **LOOPBACK})


SERVICES = {
    "stravaimport": Service("stravaimport", create_stravaimport, STRAVA, "import_user", {}),
    "reports": Service("reports", create_reports, REPORTS, "monthly_report",
                       {"year": 2026, "month": 5}),
}


@pytest.fixture
def data(tmp_path):
    app = create_dataservice({"TESTING": True, "RUN_DIR": str(tmp_path),
                              "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}",
                              "PASSWORD_HASH_METHOD": FAST_HASH})
    yield WsgiTransport(app, tokens=SessionTokens())
    app.extensions["turnout_engine"].dispose()


@pytest.fixture
def closed_url():
    """A loopback URL nobody listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(params=sorted(SERVICES))
def service(request) -> Service:
    return SERVICES[request.param]


@pytest.fixture
def web(service, data, closed_url) -> TestApp:
    return AuthorizedTestApp(service.create({"STRAVA_URL": closed_url}, data_transport=data))


def runner_id(data, token: str | None = None) -> int:
    accounts = RemoteAccounts(data)
    user = accounts.sign_up(SignUp(email=f"services-{uuid.uuid4().hex[:12]}@example.com",
                                   password=PASSWORD, profile=Profile()))
    if token:
        accounts.link_strava(user.id, token)
    return user.id


def rpc(web: TestApp, service: Service, body: Any, *, method: str | None = None,
        status: int | str = "*"):
    path = f"/rpc/{service.spec.name}/{method or service.method}"
    return web.post_json(path, body, status=status)


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_int == status, response.body
    assert response.content_type == "application/json"
    body = response.json
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert body.get("field") == field, body
    return body


# --- health, metrics, OpenAPI ----------------------------------------------------------------

def test_healthz_answers_ok_with_its_configuration(web, service):
    body = web.get("/healthz").json
    assert (body["status"], body["service"]) == ("ok", service.name)
    assert isinstance(body["pid"], int)
    assert body["data_url"].startswith("http://")


def test_healthz_does_not_call_its_dependencies(service, closed_url):
    """With the data service (and Strava) unreachable the process is still healthy: a health
    check that called them would cascade one failure into every service above it."""
    web = AuthorizedTestApp(service.create({
        "STRAVA_URL": closed_url, "STRAVAIMPORT_DATA_URL": closed_url,
        "REPORTS_DATA_URL": closed_url}))
    assert web.get("/healthz").json["status"] == "ok"


def test_metrics_are_prometheus_text_counting_served_calls(web, service, data):
    user_id = runner_id(data)
    rpc(web, service, {"args": {"user_id": user_id, **service.args}})
    response = web.get("/metrics")
    assert response.content_type == "text/plain"
    assert "# TYPE turnout_served_calls_total counter" in response.text
    assert f'turnout_served_calls_total{{contract="{service.spec.name}",' \
           f'method="{service.method}",outcome=' in response.text
    assert "turnout_served_seconds_bucket" in response.text


def test_openapi_lists_every_method_with_its_kind(web, service):
    document = web.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    for method in service.spec.methods.values():
        operation = document["paths"][f"/rpc/{method.contract}/{method.name}"]["post"]
        assert operation["x-turnout-kind"] == method.kind
    rpc_paths = {path for path in document["paths"] if path.startswith("/rpc/")}
    assert len(rpc_paths) == len(service.spec.methods)
    assert "/healthz" in document["paths"]


# --- bad requests: JSON errors, never a 500 -----------------------------------------------

def test_an_unknown_method_is_404_unknown_method(web, service):
    assert_error(rpc(web, service, {"args": {}}, method="no_such_method"), 404, "unknown_method")
    other = "reports" if service.spec.name == "strava" else "strava"
    response = web.post_json(f"/rpc/{other}/import_user", {"args": {}}, status="*")
    assert_error(response, 404, "unknown_method")


def test_an_unknown_route_is_404_route_not_found(web):
    assert_error(web.get("/nowhere", status="*"), 404, "route_not_found")
    assert web.get("/rpc/strava/import_user", status="*").status_int == 405


@pytest.mark.parametrize("user_id", ["x", True, 1.5, None, [1]])
def test_an_argument_of_the_wrong_type_is_400_naming_it(web, service, user_id):
    response = rpc(web, service, {"args": {"user_id": user_id, **service.args}})
    assert_error(response, 400, "invalid", "user_id")


def test_a_missing_argument_is_400_naming_it(web, service):
    assert_error(rpc(web, service, {"args": service.args}), 400, "invalid", "user_id")


def test_an_unknown_argument_is_400_naming_it(web, service):
    response = rpc(web, service, {"args": {"user_id": 1, **service.args, "when": "now"}})
    assert_error(response, 400, "invalid", "when")


def test_import_all_takes_no_arguments(data, closed_url):
    web = AuthorizedTestApp(create_stravaimport({"STRAVA_URL": closed_url}, data_transport=data))
    response = web.post_json("/rpc/strava/import_all", {"args": {"user_id": 1}}, status="*")
    assert_error(response, 400, "invalid", "user_id")
    assert web.post_json("/rpc/strava/import_all", {"args": {}}).json == {"result": []}


def test_reports_refuses_a_year_that_is_not_a_number(data):
    web = AuthorizedTestApp(create_reports(data_transport=data))
    response = web.post_json("/rpc/reports/monthly_report",
                             {"args": {"user_id": 1, "year": "soon", "month": 5}}, status="*")
    assert_error(response, 400, "invalid", "year")


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"args"', b'{"args": [1]}',
                                  b'{"arguments": {}}', b'{"args": null}'])
def test_a_malformed_body_is_400(web, service, body):
    response = web.post(f"/rpc/{service.spec.name}/{service.method}", body,
                        content_type="application/json", status="*")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("user_id", [0, -1, 2**63, 2**70, 4_242_424_242])
def test_ids_no_runner_can_have_are_refused_not_crashed_on(web, service, user_id):
    response = rpc(web, service, {"args": {"user_id": user_id, **service.args}})
    assert response.status_int in (400, 404), response.body
    assert response.json["error"] in ("invalid", "not_found")


def test_an_unreachable_data_service_is_503_unavailable(service, closed_url):
    web = AuthorizedTestApp(service.create({
        "STRAVA_URL": closed_url, "STRAVAIMPORT_DATA_URL": closed_url,
        "REPORTS_DATA_URL": closed_url}))
    response = rpc(web, service, {"args": {"user_id": 1, **service.args}})
    assert_error(response, 503, "unavailable")


def test_an_unreachable_strava_is_502_upstream_error(data, closed_url):
    web = AuthorizedTestApp(create_stravaimport({"STRAVA_URL": closed_url}, data_transport=data))
    user_id = runner_id(data, token="some-token")
    response = web.post_json("/rpc/strava/import_user", {"args": {"user_id": user_id}},
                             status="*")
    assert_error(response, 502, "upstream_error")
