"""Helpers shared by the test layers: auth, ports, tokens, bounded waits, error checks."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST_HASH = "pbkdf2:sha256:1000"  # real hashing, cheap enough for hundreds of sign-ups
PASSWORD = "correct-horse-9"


def basic_auth(email: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Service-to-service tokens (shims/auth.py, shims/tokendealer) -------------------

TOKEN_ISSUER = "turnout-tokendealer"
TOKEN_NOW = 1_800_000_000.0  # a fixed "now" for tests that inject a clock
_RSA_KEYS: dict = {}


def rsa_private_key(name: str = "a"):
    """A 2048-bit RSA key per name, made once per test session (generation is slow)."""
    if name not in _RSA_KEYS:
        from cryptography.hazmat.primitives.asymmetric import rsa

        _RSA_KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _RSA_KEYS[name]


def jwks_of(keys: dict) -> dict:
    """A JWKS document publishing the public half of {kid: private_key}."""
    import json

    import jwt

    published = []
    for kid, key in keys.items():
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        published.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": published}


def write_jwks(path: Path, keys: dict) -> Path:
    """Write (atomically, as a new inode so readers notice) a JWKS file for {kid: key}."""
    import json
    import os

    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(jwks_of(keys)))
    os.replace(temporary, path)
    return path


def mint_token(key=None, kid: str = "a", *, issuer: str = TOKEN_ISSUER,
               audience: str = "dataservice", subject: str = "monolith",
               scope: str = "runs:read runs:write", now: float = TOKEN_NOW,
               lifetime: int = 300, drop: tuple[str, ...] = (), **extra) -> str:
    """An RS256 token as the dealer would sign it; `drop` leaves claims out, `extra`
    overrides or adds claims (e.g. nbf)."""
    import uuid

    import jwt

    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": int(now),
              "nbf": int(now), "exp": int(now) + lifetime, "jti": str(uuid.uuid4()),
              "scope": scope, **extra}
    for name in drop:
        claims.pop(name, None)
    return jwt.encode(claims, key if key is not None else rsa_private_key(kid),
                      algorithm="RS256", headers={"kid": kid})


# --- One signing key for the whole test session: every service the tests start verifies
# against its JWKS file (TURNOUT_TOKEN_JWKS_URL, set by tests/conftest.py), and every test
# client carries a token for every audience and scope. Tests of the dealer itself and of
# refusals mint their own tokens above.

ALL_AUDIENCES = ["dataservice", "stravaimport", "reports", "monolith"]
ALL_SCOPES = " ".join(f"{contract}:{kind}" for contract in
                      ("accounts", "runs", "sync", "strava", "reports")
                      for kind in ("read", "write"))
SESSION_KID = "test-session"


class SessionTokens:
    """A TokenSource (shims/transport.py) with one long-lived, all-powerful test token."""

    def __init__(self) -> None:
        import time

        self._token = mint_token(kid=SESSION_KID, audience=ALL_AUDIENCES, scope=ALL_SCOPES,
                                 subject="tests", now=time.time(), lifetime=86_400)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        pass  # the test token does not expire within a test run


def write_session_jwks(directory: Path) -> Path:
    return write_jwks(directory / "jwks.json", {SESSION_KID: rsa_private_key(SESSION_KID)})


@dataclass(frozen=True)
class DealerSetup:
    """Files for a token dealer run by a test, and what its clients need."""

    dealer_env: dict[str, str]
    jwks_path: Path  # verifies the dealer's tokens and the session's test tokens
    secrets: dict[str, str]

    def client_env(self, client_id: str, dealer_url: str) -> dict[str, str]:
        return {"TURNOUT_TOKEN_URL": f"{dealer_url}/oauth/token",
                "TURNOUT_CLIENT_ID": client_id, "TURNOUT_CLIENT_SECRET": self.secrets[client_id],
                "TURNOUT_TOKEN_JWKS_URL": str(self.jwks_path)}


def dealer_setup(directory: Path) -> DealerSetup:
    """A keys directory and clients file for `shims.tokendealer` (every client may call
    every audience with every scope), and a JWKS file that also holds the session key."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from shims.tokendealer.clients import write_clients_file
    from shims.tokendealer.keys import ensure_key

    keys_dir, clients = directory / "keys", directory / "clients.json"
    kid = ensure_key(keys_dir)
    dealer_key = load_pem_private_key((keys_dir / f"{kid}.pem").read_bytes(), password=None)
    grants = {audience: ALL_SCOPES.split() for audience in ALL_AUDIENCES}
    secrets = write_clients_file(clients, {client: grants for client in ALL_AUDIENCES})
    jwks = write_jwks(directory / "jwks.json",
                      {SESSION_KID: rsa_private_key(SESSION_KID), kid: dealer_key})
    return DealerSetup(dealer_env={"TURNOUT_TOKENDEALER_KEYS_DIR": str(keys_dir),
                                   "TURNOUT_TOKENDEALER_CLIENTS_FILE": str(clients)},
                       jwks_path=jwks, secrets=secrets)


# WSGI tests call apps as a local client would: the ops endpoints answer loopback only.
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
    """Bounded wait until `check()` holds; returns how long it took, fails the test if never."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        gevent.sleep(0.1)
    pytest.fail(f"not within {timeout:.0f}s: {what}")


def assert_error(response, status, *, field=None, mentions=()):
    """A WebTest response that is a JSON error: `{"error", "message"[, "field"]}`, the status
    given, the field named if `field` is, and each of `mentions` in the message."""
    assert response.status_int == status, response.body
    assert response.content_type == "application/json"
    body = response.json
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str) and body["message"]
    if field is not None:
        assert body.get("field") == field, body
    for word in mentions:
        assert word in body["message"], body
    return body


class ManualClock:
    """A clock the test moves: pass it where code takes `clock=` (breaker, tokens, logs)."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def another_worker_wins_the_race(metadata, url: str) -> Iterator[None]:
    """Just before this process creates each table of `metadata`, another one creates it
    first: what a gunicorn worker booting beside others on a fresh database meets."""
    from sqlalchemy import event

    from shims.sql import make_engine

    rival = make_engine(url)
    won: set[str] = set()

    def create_it_first(table, connection, **_):
        if table.name not in won:  # the rival's own CREATE fires this event too
            won.add(table.name)
            table.create(rival, checkfirst=True)

    tables = list(metadata.tables.values())
    for table in tables:
        event.listen(table, "before_create", create_it_first)
    yield
    for table in tables:
        event.remove(table, "before_create", create_it_first)
    rival.dispose()
    assert won, "the rival created no table: the race was not staged"


def runnerly_app(tmp_path, **overrides):
    """The reference monolith as the `app` fixture builds it, with `overrides` in its config."""
    from monolith import create_app

    return create_app({
        "TESTING": True,
        "RUN_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'monolith.db'}",
        "SECRET_KEY": "test-secret",
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "STRAVA_URL": "http://strava.test",
        "FLAGS_REFRESH": 0.0,  # flag changes apply on the next call, no waiting in tests
        "RATELIMIT_STORAGE_URI": "memory://",  # one process; each test counts from zero
        **overrides,
    })


def api_id(value: str | int) -> int:
    """An id as the public API sends it (a string of digits, docs/api.md "Ids are strings"),
    as the databases hold it, for comparing what was acknowledged with what was stored."""
    return int(value)


TEST_STRAVA = "http://strava.test"  # runnerly_app's STRAVA_URL


def serve_strava_dev(mocker, tokens: str | None = None, base_url: str = TEST_STRAVA):
    """`base_url` answered by the Strava development server (stravadev) in this process,
    through requests-mock (`mocker`: its fixture or a Mocker). Its tokens are `tokens`
    ("token:name,...") or its default, the demo runner's "demo-strava-token"."""
    import requests_mock

    from stravadev.app import create_app

    client = create_app({"TOKENS": tokens} if tokens else None).test_client()

    def strava(request):
        if not request.url.startswith(base_url + "/"):
            return None
        answer = client.open(request.path_url, method=request.method,
                             headers=dict(request.headers), data=request.body)
        return requests_mock.create_response(request, status_code=answer.status_code,
                                             content=answer.get_data(),
                                             headers={"Content-Type": answer.content_type})

    mocker.add_matcher(strava)


def service_or_skip(name: str, reason: str) -> None:
    """Skip a test whose backing service is absent, unless CI demands every service
    (.ci/run sets TURNOUT_REQUIRE_SERVICES=1): there a missing service is a failure."""
    if os.environ.get("TURNOUT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required here (TURNOUT_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"{name} is not available: {reason}")
