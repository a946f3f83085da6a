"""The kit's writer of service-token secrets: what a team's `before_up` hook calls to turn
tokens on (docs/adopting.md, step 9)."""

from __future__ import annotations

import stat

from shims.tokendealer.clients import hash_secret, read_clients
from shims.tokendealer.secrets import ensure, scopes

POLICY = {"web": {"catalog": scopes("catalog")},
          "catalog": {"web": scopes("accounts", kinds=("read",))}}


def test_each_client_gets_a_private_secret_whose_hash_the_dealer_holds(tmp_path):
    secrets_dir = ensure(tmp_path, POLICY)
    clients = read_clients(tmp_path / "clients.json")
    for client in POLICY:
        path = secrets_dir / client
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert clients[client].secret_sha256 == hash_secret(path.read_text().strip())
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert dict(clients["web"].grants) == {"catalog": frozenset({"catalog:read",
                                                                  "catalog:write"})}


def test_a_second_call_keeps_the_secrets_and_a_lost_one_renews_them_all(tmp_path):
    first = (ensure(tmp_path, POLICY) / "web").read_text()
    assert (ensure(tmp_path, POLICY) / "web").read_text() == first
    (tmp_path / "secrets" / "catalog").unlink()
    assert (ensure(tmp_path, POLICY) / "web").read_text() != first
    assert (tmp_path / "secrets" / "catalog").exists()
