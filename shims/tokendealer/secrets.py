"""Who may call whom, on disk: the token dealer's clients file and each caller's secret.

`ensure(run_dir, policy)` writes, the first time (and again whenever the two disagree), the
dealer's clients file (secret hashes only) and one 0600 file per client with its secret
under `run_dir/secrets/`; circus.ini points each process at its own file
(`TURNOUT_CLIENT_SECRET_FILE`), so no secret is in the repository or in any process's
environment. Delete `secrets/` to rotate them all.

A team turns service tokens on with a `before_up` hook in turnout.toml that calls it with
its policy, `{client: {audience: [scopes]}}` (Runnerly's: scripts/service_secrets.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from shims.settings import ConfigError
from shims.tokendealer.clients import hash_secret, read_clients, write_clients_file

Policy = Mapping[str, Mapping[str, Sequence[str]]]


def scopes(*contracts: str, kinds: tuple[str, ...] = ("read", "write")) -> list[str]:
    """`contract:kind` for each contract and kind: what a policy grants."""
    return [f"{contract}:{kind}" for contract in contracts for kind in kinds]


def _consistent(policy: Policy, clients_file: Path, secrets_dir: Path) -> bool:
    """Every client of the policy has a secret file whose hash the clients file holds."""
    if not clients_file.exists():
        return False
    try:
        clients = read_clients(clients_file)
        return all(client in clients and (secrets_dir / client).exists()
                   and hash_secret((secrets_dir / client).read_text().strip())
                   == clients[client].secret_sha256 for client in policy)
    except (ConfigError, OSError):
        return False  # written again from scratch below


def ensure(run_dir: Path, policy: Policy) -> Path:
    """The secrets directory, with a clients file and one secret per client of `policy`."""
    secrets_dir = run_dir / "secrets"
    clients_file = run_dir / "clients.json"
    if _consistent(policy, clients_file, secrets_dir):
        return secrets_dir
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    grants = {client: {audience: list(granted) for audience, granted in audiences.items()}
              for client, audiences in policy.items()}
    for client, secret in write_clients_file(clients_file, grants).items():
        path = secrets_dir / client
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
    return secrets_dir
