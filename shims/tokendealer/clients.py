"""The dealer's clients: who may ask for tokens, for which audiences and scopes.

The file holds only SHA-256 hashes of the secrets (they are 256-bit random values, so a
plain hash is enough; no password stretching is needed):

    {"clients": {"monolith": {"secret_sha256": "<hex>",
                              "grants": {"dataservice": ["accounts:read", "runs:write"]}}}}

`write_clients_file` makes one with fresh secrets and hands the plain secrets back, once,
for the operator to give each process (e.g. TURNOUT_CLIENT_SECRET).

From a shell: `python -m shims.tokendealer.clients write CLIENTS_FILE POLICY_JSON`
where POLICY_JSON is `{"<client_id>": {"<audience>": ["<scope>", ...]}}`; it prints the
secrets as JSON on stdout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import gevent.lock

from shims.settings import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")  # ids, audiences, scopes
HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Compared against when the client id is unknown, so both refusals take the same time.
_NOBODY = hashlib.sha256(b"no such client").hexdigest()


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_sha256: str
    grants: Mapping[str, frozenset[str]]  # audience -> scopes


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def read_clients(path: str | os.PathLike[str]) -> dict[str, Client]:
    where = Path(path)
    try:
        raw = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the clients file {where} cannot be read: "
                          f"{exc.strerror or type(exc).__name__}") from None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"the clients file {where} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("clients"), dict):
        raise ConfigError(f'the clients file {where} must be {{"clients": {{...}}}}')
    clients = {}
    for client_id, entry in document["clients"].items():
        name = f"{where}: client {client_id!r}"
        if not NAME_PATTERN.match(client_id):
            raise ConfigError(f"{name}: a client id is letters, digits and ._:- only")
        if not isinstance(entry, dict):
            raise ConfigError(f"{name} must be an object")
        digest = entry.get("secret_sha256")
        if not isinstance(digest, str) or not HEX_SHA256.match(digest):
            raise ConfigError(f"{name}: secret_sha256 must be 64 lowercase hex digits")
        grants = entry.get("grants")
        if not isinstance(grants, dict):
            raise ConfigError(f'{name}: grants must be {{"<audience>": ["<scope>", ...]}}')
        clients[client_id] = Client(client_id, digest, _grants(name, grants))
    return clients


def _grants(name: str, grants: dict) -> dict[str, frozenset[str]]:
    checked = {}
    for audience, scopes in grants.items():
        if not NAME_PATTERN.match(audience):
            raise ConfigError(f"{name}: {audience!r} is not an audience name")
        if not isinstance(scopes, list) or not all(
                isinstance(scope, str) and NAME_PATTERN.match(scope) for scope in scopes):
            raise ConfigError(f"{name}: the grants for {audience!r} must be a list of scope "
                              "names such as 'runs:read'")
        checked[audience] = frozenset(scopes)
    return checked


def write_clients_file(path: str | os.PathLike[str],
                       policy: Mapping[str, Mapping[str, list[str]]]) -> dict[str, str]:
    """Write a clients file (0600, replacing any) granting `policy` ({client: {audience:
    [scopes]}}) with a fresh random secret per client; returns {client: secret}."""
    plain = {client_id: secrets.token_urlsafe(32) for client_id in policy}
    document = {"clients": {
        client_id: {"secret_sha256": hash_secret(plain[client_id]),
                    "grants": {audience: sorted(set(scopes))
                               for audience, scopes in grants.items()}}
        for client_id, grants in policy.items()}}
    for client_id, entry in document["clients"].items():  # same checks as reading it back
        _grants(f"client {client_id!r}", entry["grants"])
        if not NAME_PATTERN.match(client_id):
            raise ConfigError(f"{client_id!r} is not a client id (letters, digits, ._:-)")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, target)  # readers see the old file or the new one, whole
    except BaseException:
        os.unlink(temporary)
        raise
    return plain


class ClientRegistry:
    """The clients file as one worker sees it, re-read when it changes on disk."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = gevent.lock.BoundedSemaphore()
        self._stamp: tuple[int, int, int] | None = None
        self._clients: dict[str, Client] = {}

    def clients(self) -> dict[str, Client]:
        try:
            status = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"the clients file {self.path} cannot be read: "
                              f"{exc.strerror or type(exc).__name__}") from None
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._clients = read_clients(self.path)
                    self._stamp = stamp
        return self._clients

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The client if the secret is right; None for a wrong secret or an unknown id,
        after the same work either way (a hash and a constant-time comparison)."""
        client = self.clients().get(client_id)
        expected = client.secret_sha256 if client is not None else _NOBODY
        matches = hmac.compare_digest(hash_secret(secret).encode("ascii"),
                                      expected.encode("ascii"))
        return client if matches and client is not None else None


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m shims.tokendealer.clients",
                                     description="Write the token dealer's clients file.")
    parser.add_argument("action", choices=["write"])
    parser.add_argument("clients_file")
    parser.add_argument("policy", help='JSON: {"<client>": {"<audience>": ["<scope>"]}}')
    args = parser.parse_args(argv)
    try:
        policy = json.loads(args.policy)
        if not isinstance(policy, dict) or not all(isinstance(g, dict)
                                                   for g in policy.values()):
            raise ConfigError('the policy must be {"<client>": {"<audience>": [...]}}')
        print(json.dumps(write_clients_file(args.clients_file, policy), indent=2))
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
