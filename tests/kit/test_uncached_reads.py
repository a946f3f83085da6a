"""Reads a contract marks `@read(cacheable=False)` leave nothing behind in the client."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pytest
from flask import Flask

from contracts.accounts import ACCOUNTS, RemoteAccounts, UserRecord
from shims.contract import describe, read
from shims.errors import Unauthorized
from shims.remote import RemoteClient
from shims.service import install_json_errors, rpc_blueprint
from shims.transport import WsgiTransport

SECRET = "correct horse battery staple"


class Vault(Protocol):
    @read(cacheable=False)
    def check(self, password: str) -> bool: ...

    @read
    def motto(self, user_id: int) -> str: ...


VAULT = describe(Vault, "vault")


class RemoteVault(RemoteClient):
    spec = VAULT


class LocalVault:
    def check(self, password: str) -> bool:
        return password == SECRET

    def motto(self, user_id: int) -> str:
        return "keep it secret"


def _app(bindings) -> Flask:
    app = Flask(__name__)
    app.register_blueprint(rpc_blueprint(bindings))
    install_json_errors(app)
    return app


class SpyTransport(WsgiTransport):
    """Records the headers of every call, to see what the client sent."""

    def __init__(self, app: Flask):
        super().__init__(app)
        self.sent_headers: list[dict] = []

    def post(self, path, payload, headers=None, **kwargs):
        self.sent_headers.append(dict(headers or {}))
        return super().post(path, payload, headers=headers, **kwargs)


def test_the_marker_reaches_the_spec():
    assert VAULT.method("check").cacheable is False
    assert VAULT.method("motto").cacheable is True
    assert ACCOUNTS.method("authenticate").cacheable is False
    assert ACCOUNTS.method("get_user").cacheable is True
    assert ACCOUNTS.method("sign_up").cacheable is False  # writes never are


def test_an_uncached_read_keeps_no_answer_and_no_arguments():
    transport = SpyTransport(_app([(VAULT, LocalVault())]))
    client = RemoteVault(transport)
    assert client.check(SECRET) is True
    assert client.check(SECRET) is True
    assert len(client._cache) == 0
    assert all("If-None-Match" not in headers for headers in transport.sent_headers)
    client.motto(1)  # a cacheable read is still kept: the marker, not the cache, decides
    assert len(client._cache) == 1
    assert not any(SECRET in key for key in client._cache._entries)


def test_the_service_does_not_tag_an_uncached_read_and_says_no_store():
    response = _app([(VAULT, LocalVault())]).test_client().post(
        "/rpc/vault/check", json={"args": {"password": SECRET}})
    assert response.status_code == 200 and "ETag" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


RUNNER = UserRecord(id=7, email="runner@example.com", first_name="", last_name="", age=None,
                    weight=None, max_hr=None, rest_hr=None, vo2max=None, is_admin=False,
                    strava_linked=False, created_at=dt.datetime(2026, 5, 17, 7, 30))


class Accounts:
    """Only what authenticate needs: the runner for the right password."""

    def authenticate(self, email: str, password: str) -> UserRecord:
        if password != SECRET:
            raise Unauthorized("wrong email or password")
        return RUNNER


def test_authenticates_arguments_never_reach_the_read_cache():
    client = RemoteAccounts(WsgiTransport(_app([(ACCOUNTS, Accounts())])))
    assert client.authenticate("runner@example.com", SECRET) == RUNNER
    with pytest.raises(Unauthorized):
        client.authenticate("runner@example.com", "another guess 123")
    assert len(client._cache) == 0
