"""schemathesis against the token dealer's OpenAPI document, in process over WSGI.

Settings from tests/schemathesis-tokendealer.toml, which the CLI reads too (docs/services.md):
every check on, positive and negative cases, seeded and derandomized so a run is repeatable,
bounded so the file takes well under a minute. One test per operation runs the examples,
coverage (boundaries, missing parameters, undeclared methods: 405 with `Allow`) and fuzzing
phases. The schema is built from `openapi_document()` (pure), and the last tests prove the
dealer serves exactly that document and documents every route it has.

A real client's credentials are supplied (by HTTP Basic, or in the form where a generated case
authenticates that way, since RFC 6749 2.3 forbids both at once) so positive cases can be
granted; generated audiences are not in its grants, so those get 400 unauthorized_client,
which the configuration allows narrowly and test_the_dealer_conforms asserts.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from webtest import TestApp

from shims.tokendealer.app import create_app
from shims.tokendealer.clients import write_clients_file
from shims.tokendealer.openapi import openapi_document

from support import LOOPBACK

CLIENT = "monolith"
POLICY = {CLIENT: {"dataservice": ["runs:read", "runs:write"]}}
ISSUER, MAX_BODY = "turnout-tokendealer", 16 * 1024  # the dealer's defaults
CONFIG = schemathesis.Config.from_path(Path(__file__).parent.parent /
                                       "schemathesis-tokendealer.toml")
GRANT_REFUSALS = {"unauthorized_client", "invalid_scope"}


class CurrentApp:
    """The WSGI app schemathesis sends to: the dealer the running test built, called from
    loopback as the services call it (schemathesis's WSGI client names no address, and the
    dealer's /healthz and /metrics answer loopback callers only)."""

    app = None

    def __call__(self, environ, start_response):
        return self.app({**environ, **LOOPBACK}, start_response)


CURRENT = CurrentApp()
schema = schemathesis.openapi.from_dict(openapi_document(ISSUER, MAX_BODY), config=CONFIG)
schema.app = CURRENT


@schema.auth(refresh_interval=None)
class ClientSecret:
    """The real client's id and secret. By HTTP Basic, unless the generated form already
    authenticates the client: a valid case then gets the real values in the form; a
    negative one keeps its own (its invalid credentials are what it tests)."""

    secret = None

    def get(self, case, context):
        return ClientSecret.secret

    def set(self, case, secret, context):
        body = case.body if isinstance(case.body, dict) else {}
        if "client_id" in body or "client_secret" in body:
            if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE:
                case.body = {**body, "client_id": CLIENT, "client_secret": secret}
            return
        credentials = base64.b64encode(f"{CLIENT}:{secret}".encode()).decode()
        case.headers = {**(case.headers or {}), "Authorization": f"Basic {credentials}"}


@pytest.fixture(scope="module")
def dealer(tmp_path_factory):
    """One dealer for the module (one RSA key made, not one per operation), with a client
    whose secret the auth above supplies."""
    run_dir = tmp_path_factory.mktemp("dealer")
    ClientSecret.secret = write_clients_file(run_dir / "clients.json", POLICY)[CLIENT]
    yield create_app({"RUN_DIR": str(run_dir)})
    ClientSecret.secret = None


@pytest.fixture
def served(dealer):
    CURRENT.app = dealer
    yield dealer
    CURRENT.app = None


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_dealer_conforms(case, served):
    response = case.call_and_validate()
    if case.meta.generation.mode is GenerationMode.POSITIVE and response.status_code == 400:
        # The only refusals of a well-formed request: grants are configuration (see the toml).
        assert response.json()["error"] in GRANT_REFUSALS, response.text


def test_a_granted_request_conforms_with_every_check(served):
    """Generated audiences are never granted, so a token answer is proved here by hand."""
    operation = schema["/oauth/token"]["POST"]
    for body in ({"grant_type": "client_credentials", "audience": "dataservice"},
                 {"grant_type": "client_credentials", "audience": "dataservice",
                  "scope": "runs:read", "client_id": CLIENT,
                  "client_secret": ClientSecret.secret}):
        case = operation.Case(body=body, media_type="application/x-www-form-urlencoded")
        if "client_id" not in body:
            ClientSecret().set(case, ClientSecret.secret, None)
        response = case.call_and_validate()
        assert response.status_code == 200
        assert {name.lower(): value for name, value in response.headers.items()}[
            "cache-control"] == ["no-store"]


def test_the_dealer_serves_the_document_it_is_held_to(dealer):
    served_document = TestApp(dealer, extra_environ=LOOPBACK).get("/openapi.json").json
    assert served_document == openapi_document(ISSUER, MAX_BODY)


def test_every_route_is_documented_and_nothing_else(dealer):
    routes = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in dealer.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in openapi_document(ISSUER, MAX_BODY)[
        "paths"].items() for method in item}
    assert routes == documented


def test_the_document_states_the_protocols_rules():
    operation = openapi_document(ISSUER, MAX_BODY)["paths"]["/oauth/token"]["post"]
    form = openapi_document(ISSUER, MAX_BODY)["components"]["schemas"]["TokenRequest"]
    assert form["properties"]["grant_type"] == {"enum": ["client_credentials"]}
    assert set(form["required"]) == {"grant_type", "audience"}
    assert {"400", "401", "405", "413", "503"} <= set(operation["responses"])
    assert operation["responses"]["200"]["headers"]["Cache-Control"]["schema"] == {
        "const": "no-store"}
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def _validated(path, method, excluded_checks=(), **case):
    """A hand-made case, sent and checked against the document with every check (but
    those named)."""
    return schema[path][method].Case(**case).call_and_validate(
        excluded_checks=list(excluded_checks))


def _header(response, name):
    return {key.lower(): value for key, value in response.headers.items()}[name.lower()]


def test_a_body_over_the_limit_is_a_documented_413_never_stored(served):
    body = {"grant_type": "client_credentials", "audience": "x" * (MAX_BODY + 1)}
    response = _validated("/oauth/token", "POST", body=body,
                          media_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert _header(response, "Cache-Control") == ["no-store"]


def test_a_wrong_method_on_the_token_endpoint_is_405_with_allow_never_stored(dealer):
    answer = TestApp(dealer, extra_environ=LOOPBACK).get("/oauth/token", status=405)
    assert "POST" in answer.headers["Allow"].split(", ")
    assert answer.headers["Cache-Control"] == "no-store"


def test_unreadable_keys_are_a_documented_503_not_a_500(tmp_path):
    write_clients_file(tmp_path / "clients.json", POLICY)
    app = create_app({"RUN_DIR": str(tmp_path)})
    web = TestApp(app, extra_environ=LOOPBACK)
    kid = web.get("/healthz").json["signer"]  # makes the first key
    (tmp_path / "keys" / f"{kid}-broken.pem").write_text("not a key")  # a new listing: read
    CURRENT.app = app
    try:
        # A 503 is the answer here (the document says so), which not_a_server_error flags.
        response = _validated("/.well-known/jwks.json", "GET",
                              excluded_checks=[not_a_server_error])
    finally:
        CURRENT.app = None
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
