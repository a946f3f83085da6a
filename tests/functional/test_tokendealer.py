"""The token dealer over WSGI: grants, refusals, JWKS, key rotation, and a service that
verifies its tokens end to end."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import uuid
from typing import Protocol

import jwt
import pytest
from flask import Flask
from webtest import TestApp

from shims.tokendealer.app import create_app
from shims.tokendealer.clients import hash_secret, read_clients, write_clients_file
from shims.tokendealer.keys import (
    KeyringError,
    list_kids,
    load_key,
    retire_key,
    rotate_key,
)
from shims.auth import ClientCredentials, TokenVerifier
from shims.contract import describe, read, write
from shims.errors import InvalidToken, TransportError
from shims.service import install_json_errors, rpc_blueprint
from shims.settings import ConfigError
from shims.transport import WsgiTransport

from support import LOOPBACK, ROOT, TOKEN_ISSUER, TOKEN_NOW, ManualClock, mint_token

DEALER = "http://dealer.test"
TOKEN_URL = f"{DEALER}/oauth/token"
JWKS_URL = f"{DEALER}/.well-known/jwks.json"
POLICY = {
    "monolith": {"dataservice": ["runs:read", "runs:write", "accounts:read"],
                 "echo": ["echo:read", "echo:write"]},
    "reader": {"echo": ["echo:read"], "dataservice": ["runs:read"]},
}


class Dealer:
    def __init__(self, tmp_path, clock):
        self.dir = tmp_path
        self.clock = clock
        self.secrets = write_clients_file(tmp_path / "clients.json", POLICY)
        self.app = create_app({"RUN_DIR": str(tmp_path)}, clock=clock)
        self.web = TestApp(self.app, extra_environ=LOOPBACK)

    @property
    def keys_dir(self):
        return self.dir / "keys"

    def basic(self, client_id: str, secret: str | None = None) -> dict[str, str]:
        secret = self.secrets[client_id] if secret is None else secret
        return {"Authorization": "Basic " + base64.b64encode(
            f"{client_id}:{secret}".encode()).decode()}

    def grant(self, client: str = "monolith", audience: str = "dataservice",
              status: int = 200, headers: dict | None = None, **form):
        """Ask for a token, as `client` by HTTP Basic unless `headers` are given; `form`
        adds or overrides form fields (client_id and client_secret included)."""
        body = {"grant_type": "client_credentials", "audience": audience, **form}
        return self.web.post("/oauth/token", body, status=status,
                             headers=self.basic(client) if headers is None else headers)

    def token(self, client_id: str = "monolith", audience: str = "dataservice", **form) -> str:
        return self.grant(client_id, audience, **form).json["access_token"]

    def route(self, requests_mock) -> None:
        """Send requests' calls to the dealer's URL to this in-process dealer."""
        def token(request, context):
            headers = {"Content-Type": request.headers["Content-Type"]}
            if "Authorization" in request.headers:
                headers["Authorization"] = request.headers["Authorization"]
            answer = self.web.post("/oauth/token", request.body, headers=headers,
                                   expect_errors=True)
            context.status_code = answer.status_int
            context.headers["Content-Type"] = answer.content_type
            return answer.text

        def jwks(request, context):
            return self.web.get("/.well-known/jwks.json").text

        requests_mock.post(TOKEN_URL, text=token)
        requests_mock.get(JWKS_URL, text=jwks)


@pytest.fixture
def clock():
    return ManualClock(TOKEN_NOW)


@pytest.fixture
def dealer(tmp_path, clock):
    return Dealer(tmp_path, clock)


def verifier_for(audience: str, clock, **kwargs) -> TokenVerifier:
    return TokenVerifier(JWKS_URL, TOKEN_ISSUER, audience, clock=clock, **kwargs)


def unverified(token: str) -> tuple[dict, dict]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# --- grants --------------------------------------------------------------------------------

def test_a_grant_by_http_basic(dealer):
    answer = dealer.grant()
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json["token_type"] == "Bearer"
    assert answer.json["expires_in"] == 300
    assert answer.json["scope"] == "accounts:read runs:read runs:write"
    header, claims = unverified(answer.json["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == list_kids(dealer.keys_dir)[-1]
    now = int(TOKEN_NOW)
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": TOKEN_ISSUER, "sub": "monolith", "aud": "dataservice", "iat": now, "nbf": now,
        "exp": now + 300, "scope": "accounts:read runs:read runs:write"}
    assert uuid.UUID(claims["jti"])


def test_a_grant_by_form_credentials(dealer):
    answer = dealer.grant(headers={}, client_id="reader",
                          client_secret=dealer.secrets["reader"])
    assert answer.json["scope"] == "runs:read"
    assert unverified(answer.json["access_token"])[1]["sub"] == "reader"


def test_a_grant_for_some_of_the_scopes(dealer):
    answer = dealer.grant(scope="runs:read  accounts:read")
    assert answer.json["scope"] == "accounts:read runs:read"


def test_the_token_verifies_against_the_dealers_own_jwks(dealer, clock, requests_mock):
    dealer.route(requests_mock)
    claims = verifier_for("dataservice", clock).verify(dealer.token())
    assert claims.subject == "monolith"
    assert claims.scopes == {"accounts:read", "runs:read", "runs:write"}
    assert claims.expires_at == TOKEN_NOW + 300


def test_tokens_are_unique(dealer):
    assert dealer.token() != dealer.token()


# --- refusals ------------------------------------------------------------------------------

def test_a_bad_secret_and_an_unknown_client_get_the_same_answer(dealer):
    wrong = dealer.grant(headers=dealer.basic("monolith", "not-the-secret"), status=401)
    unknown = dealer.grant(headers=dealer.basic("nobody", dealer.secrets["monolith"]),
                           status=401)
    assert wrong.json == unknown.json == {"error": "invalid_client",
                                          "error_description": "client authentication failed"}
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]
    assert wrong.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer abc"},
                                     {"Authorization": "Basic !!!not-base64"},
                                     {"Authorization": "Basic " + base64.b64encode(
                                         b"no-colon").decode()}])
def test_missing_or_broken_client_authentication_is_invalid_client(dealer, headers):
    assert dealer.grant(headers=headers, status=401).json["error"] == "invalid_client"


def test_a_secret_in_the_form_for_another_client_is_invalid_client(dealer):
    answer = dealer.grant(headers={}, client_id="reader",
                          client_secret=dealer.secrets["monolith"], status=401)
    assert answer.json["error"] == "invalid_client"


def test_a_missing_grant_type_is_invalid_request(dealer):
    answer = dealer.web.post("/oauth/token", {"audience": "dataservice"},
                             headers=dealer.basic("monolith"), status=400)
    assert answer.json["error"] == "invalid_request"
    assert "grant_type" in answer.json["error_description"]


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token"])
def test_other_grant_types_are_unsupported(dealer, grant_type):
    answer = dealer.grant(grant_type=grant_type, status=400)
    assert answer.json["error"] == "unsupported_grant_type"


def test_a_missing_audience_is_invalid_request(dealer):
    answer = dealer.web.post("/oauth/token", {"grant_type": "client_credentials"},
                             headers=dealer.basic("monolith"), status=400)
    assert answer.json["error"] == "invalid_request"
    assert "audience" in answer.json["error_description"]


def test_an_audience_not_granted_is_unauthorized_client(dealer):
    answer = dealer.grant(audience="reports", status=400)
    assert answer.json["error"] == "unauthorized_client"
    assert "reports" in answer.json["error_description"]


def test_a_scope_not_granted_is_invalid_scope_naming_it(dealer):
    answer = dealer.grant("reader", scope="runs:read runs:write", status=400)
    assert answer.json["error"] == "invalid_scope"
    assert "runs:write" in answer.json["error_description"]
    assert "runs:read" not in answer.json["error_description"]


def test_a_json_body_is_invalid_request(dealer):
    answer = dealer.web.post_json("/oauth/token", {"grant_type": "client_credentials",
                                                   "audience": "dataservice"},
                                  headers=dealer.basic("monolith"), status=400)
    assert answer.json["error"] == "invalid_request"
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_repeated_parameter_is_invalid_request(dealer):
    answer = dealer.web.post("/oauth/token",
                             "grant_type=client_credentials&audience=dataservice&audience=echo",
                             headers={**dealer.basic("monolith"),
                                      "Content-Type": "application/x-www-form-urlencoded"},
                             status=400)
    assert answer.json["error"] == "invalid_request"
    assert "audience" in answer.json["error_description"]


def test_two_ways_of_client_authentication_is_invalid_request(dealer):
    answer = dealer.grant(client_id="monolith", client_secret=dealer.secrets["monolith"],
                          status=400)
    assert answer.json["error"] == "invalid_request"


def test_only_post_reaches_the_token_endpoint(dealer):
    answer = dealer.web.get("/oauth/token", status=405)
    assert answer.json["error"] == "method_not_allowed"


# --- clients file --------------------------------------------------------------------------

def test_the_clients_file_holds_only_hashes_and_is_private(dealer):
    path = dealer.dir / "clients.json"
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for secret in dealer.secrets.values():
        assert secret not in text
        assert hash_secret(secret) in text
    clients = read_clients(path)
    assert clients["reader"].grants == {"echo": {"echo:read"}, "dataservice": {"runs:read"}}


def test_a_new_clients_file_applies_without_a_restart(dealer):
    old = dealer.secrets["reader"]
    dealer.secrets = write_clients_file(dealer.dir / "clients.json", {"reader": {"echo": []}})
    dealer.grant("reader", headers=dealer.basic("reader", old), status=401)
    assert dealer.grant("reader", audience="echo").json["scope"] == ""


@pytest.mark.parametrize("content, complaint", [
    ("{not json", "not JSON"),
    ('{"monolith": {}}', '"clients"'),
    ('{"clients": {"m": {"secret_sha256": "abc", "grants": {}}}}', "64 lowercase hex"),
    ('{"clients": {"m": {"secret_sha256": "' + "a" * 64 + '", "grants": {"x": "y"}}}}',
     "list of scope"),
    ('{"clients": {"m": {"secret_sha256": "' + "a" * 64 + '"}}}', "grants must be"),
    ('{"clients": {"m m": {}}}', "client id"),
])
def test_a_malformed_clients_file_is_a_clear_config_error(tmp_path, content, complaint):
    path = tmp_path / "clients.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=complaint) as raised:
        read_clients(path)
    assert str(path) in str(raised.value)


def test_a_missing_clients_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_clients(tmp_path / "absent.json")


def test_an_unreadable_clients_file_refuses_tokens_without_details(dealer):
    (dealer.dir / "clients.json").write_text("{broken")
    answer = dealer.grant(status=503)
    assert answer.json["error"] == "temporarily_unavailable"
    assert "clients.json" not in answer.json["error_description"]
    health = dealer.web.get("/healthz", status=503)
    assert health.json["status"] == "failing"


# --- keys and rotation ---------------------------------------------------------------------

def test_the_first_use_creates_one_private_key(dealer):
    assert list_kids(dealer.keys_dir) == []  # nothing at app creation
    dealer.token()
    (kid,) = list_kids(dealer.keys_dir)
    assert stat.S_IMODE((dealer.keys_dir / f"{kid}.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(dealer.keys_dir.stat().st_mode) == 0o700


def test_workers_starting_together_make_one_key(tmp_path):
    keys_dir = tmp_path / "keys"
    code = "import sys; from shims.tokendealer.keys import ensure_key; " \
           "print(ensure_key(sys.argv[1]))"
    workers = [subprocess.Popen([sys.executable, "-c", code, str(keys_dir)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True) for _ in range(4)]
    kids = {worker.communicate(timeout=60)[0].strip() for worker in workers}
    assert all(worker.returncode == 0 for worker in workers)
    assert len(kids) == 1
    assert list_kids(keys_dir) == sorted(kids)


def test_the_jwks_publishes_every_key(dealer):
    dealer.token()
    answer = dealer.web.get("/.well-known/jwks.json")
    assert answer.headers["Cache-Control"] == "public, max-age=60"
    (key,) = answer.json["keys"]
    assert set(key) == {"kid", "kty", "alg", "use", "n", "e"}
    assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert key["kid"] == list_kids(dealer.keys_dir)[0]


def test_rotation_without_a_restart(dealer, clock, requests_mock):
    dealer.route(requests_mock)
    verifier = verifier_for("dataservice", clock)
    old_token = dealer.token()
    old_kid = unverified(old_token)[0]["kid"]
    verifier.verify(old_token)

    new_kid = rotate_key(dealer.keys_dir)
    assert new_kid > old_kid
    new_token = dealer.token()
    assert unverified(new_token)[0]["kid"] == new_kid
    published = {key["kid"] for key in dealer.web.get("/.well-known/jwks.json").json["keys"]}
    assert published == {old_kid, new_kid}
    clock.now += 10  # past the verifier's refetch limit: it looks up the new kid once
    assert verifier.verify(new_token).subject == "monolith"
    assert verifier.verify(old_token).subject == "monolith"  # old tokens live on

    old_key = load_key(dealer.keys_dir / f"{old_kid}.pem").private_key
    retire_key(dealer.keys_dir, old_kid)
    published = {key["kid"] for key in dealer.web.get("/.well-known/jwks.json").json["keys"]}
    assert published == {new_kid}
    clock.now += 300  # the verifier's cached JWKS expires and the old key is gone from it
    still_fresh = mint_token(old_key, kid=old_kid, audience="dataservice", now=clock.now)
    with pytest.raises(InvalidToken, match="does not publish"):
        verifier.verify(still_fresh)
    assert verifier.verify(dealer.token()).subject == "monolith"


def test_the_current_signer_cannot_be_retired(dealer):
    dealer.token()
    (only,) = list_kids(dealer.keys_dir)
    with pytest.raises(KeyringError, match="the only key"):
        retire_key(dealer.keys_dir, only)
    newer = rotate_key(dealer.keys_dir)
    with pytest.raises(KeyringError, match="the current signer"):
        retire_key(dealer.keys_dir, newer)
    with pytest.raises(KeyringError, match="no key"):
        retire_key(dealer.keys_dir, "20000101T000000000000000-deadbeef")
    with pytest.raises(KeyringError, match="not a key id"):
        retire_key(dealer.keys_dir, "../clients")
    retire_key(dealer.keys_dir, only)
    assert list_kids(dealer.keys_dir) == [newer]


# --- operations ----------------------------------------------------------------------------

def test_healthz_reports_the_signer_and_the_clients(dealer):
    body = dealer.web.get("/healthz").json
    assert body["status"] == "ok"
    assert body["signer"] == list_kids(dealer.keys_dir)[-1]
    assert body["clients"] == 2


def test_metrics_count_tokens_by_client_and_outcome(dealer):
    dealer.token()
    dealer.grant(headers=dealer.basic("intruder", "guess"), status=401)
    dealer.grant("reader", scope="runs:write", status=400)
    text = dealer.web.get("/metrics").text
    assert 'turnout_tokendealer_tokens_total{client="monolith",outcome="issued"} 1.0' in text
    assert 'turnout_tokendealer_tokens_total{client="unknown",outcome="invalid_client"} 1.0' \
        in text
    assert 'turnout_tokendealer_tokens_total{client="reader",outcome="invalid_scope"} 1.0' in text
    assert "intruder" not in text


def test_openapi_describes_the_endpoints(dealer):
    document = dealer.web.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    assert {"/oauth/token", "/.well-known/jwks.json", "/healthz", "/metrics"} <= set(
        document["paths"])


def test_a_nonpositive_lifetime_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="TOKEN_LIFETIME"):
        create_app({"RUN_DIR": str(tmp_path), "TOKEN_LIFETIME": 0})


# --- a protected service -------------------------------------------------------------------

class Echo(Protocol):
    @read
    def say(self, text: str) -> str: ...

    @write
    def store(self, text: str) -> str: ...


ECHO = describe(Echo, "echo")


class LocalEcho:
    def say(self, text: str) -> str:
        return text

    def store(self, text: str) -> str:
        return text.upper()


@pytest.fixture
def served():
    return []


@pytest.fixture
def echo_service(clock, served):
    verifier = verifier_for("echo", clock)
    app = Flask("echo")
    app.register_blueprint(rpc_blueprint(
        [(ECHO, LocalEcho())], guard=verifier.guard,
        observe=lambda method, outcome, seconds: served.append((method.name, outcome))))
    install_json_errors(app)
    return TestApp(app, extra_environ=LOOPBACK)


def call(service, method: str, token: str | None, status: int):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return service.post_json(f"/rpc/echo/{method}", {"args": {"text": "hi"}}, headers=headers,
                             status=status)


def test_the_service_refuses_a_call_without_a_token(dealer, requests_mock, echo_service):
    dealer.route(requests_mock)
    answer = call(echo_service, "say", None, 401)
    assert answer.json["error"] == "invalid_token"
    assert requests_mock.call_count == 0  # refused before any key was needed


def test_the_service_refuses_a_token_for_another_audience(dealer, requests_mock, echo_service):
    dealer.route(requests_mock)
    answer = call(echo_service, "say", dealer.token("monolith", "dataservice"), 401)
    assert answer.json["error"] == "invalid_token"
    assert "audience" in answer.json["message"]


def test_the_service_refuses_a_token_without_the_scope(dealer, requests_mock, echo_service):
    dealer.route(requests_mock)
    answer = call(echo_service, "store", dealer.token("reader", "echo"), 403)
    assert answer.json["error"] == "insufficient_scope"
    assert "echo:write" in answer.json["message"]


def test_the_service_accepts_a_good_token(dealer, requests_mock, echo_service, served):
    dealer.route(requests_mock)
    assert call(echo_service, "say", dealer.token("reader", "echo"), 200).json == {
        "result": "hi"}
    assert call(echo_service, "store", dealer.token("monolith", "echo"), 200).json == {
        "result": "HI"}
    assert served == [("say", "ok"), ("store", "ok")]


def test_a_transport_fetches_tokens_and_refreshes_once_on_401(dealer, clock, requests_mock,
                                                             echo_service, served):
    """End to end: ClientCredentials against the dealer, WsgiTransport to the service.
    The client's clock lags the services' so its cached token has expired for them: the
    service answers 401 invalid_token, the transport fetches a new token once, and the
    call goes through."""
    dealer.route(requests_mock)
    lagging = ManualClock(TOKEN_NOW)
    tokens = ClientCredentials(TOKEN_URL, "monolith", dealer.secrets["monolith"], "echo",
                               scopes=None, clock=lagging)
    transport = WsgiTransport(echo_service.app, tokens=tokens)
    token_calls = lambda: sum(1 for r in requests_mock.request_history  # noqa: E731
                              if r.url == TOKEN_URL)

    assert transport.post("/rpc/echo/store", {"args": {"text": "one"}}).body == {
        "result": "ONE"}
    assert transport.post("/rpc/echo/say", {"args": {"text": "two"}}).body == {"result": "two"}
    assert token_calls() == 1  # cached

    clock.now += 400  # the dealer and the service are past the token's expiry
    reply = transport.post("/rpc/echo/store", {"args": {"text": "three"}})
    assert (reply.status, reply.body) == (200, {"result": "THREE"})
    assert token_calls() == 2  # refreshed exactly once
    assert served[-2:] == [("store", "invalid_token"), ("store", "ok")]

    tokens.invalidate()
    assert transport.post("/rpc/echo/say", {"args": {"text": "four"}}).status == 200
    assert token_calls() == 3


def test_a_refused_client_surfaces_as_a_transport_error(dealer, requests_mock, echo_service):
    dealer.route(requests_mock)
    tokens = ClientCredentials(TOKEN_URL, "monolith", "wrong-secret", "echo")
    transport = WsgiTransport(echo_service.app, tokens=tokens)
    with pytest.raises(TransportError, match="invalid_client") as raised:
        transport.post("/rpc/echo/say", {"args": {"text": "x"}})
    assert "wrong-secret" not in str(raised.value)


def test_a_dealer_config_round_trip_through_json(tmp_path):
    secrets = write_clients_file(tmp_path / "c.json", {"a": {"svc": ["x:read", "x:read"]}})
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["clients"]["a"]["grants"] == {"svc": ["x:read"]}
    assert document["clients"]["a"]["secret_sha256"] == hash_secret(secrets["a"])
    assert len(secrets["a"]) >= 43
