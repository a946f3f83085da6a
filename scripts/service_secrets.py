"""Who may call whom: the token dealer's clients, and each process's client secret.

`turnout up` calls `ensure()` before circusd starts: the first time it writes the
dealer's clients file (secret hashes only) and one 0600 file per client with its
secret under `$TURNOUT_RUN_DIR/secrets/`; circus.ini points each process at its
own file (`TURNOUT_CLIENT_SECRET_FILE`), so no secret is in the repository or in
any process's environment. Delete the run directory's `secrets/` to rotate them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from extracted.tokendealer.clients import hash_secret, read_clients, write_clients_file
from shims.settings import ConfigError


def _scopes(*contracts: str, kinds: tuple[str, ...] = ("read", "write")) -> list[str]:
    return [f"{contract}:{kind}" for contract in contracts for kind in kinds]


# The grants of each client: {client: {audience: [scopes]}}. The importer and the reports
# service reach users and runs through the monolith's routed /rpc by default, or through
# the data service once that is where the data lives.
POLICY: dict[str, dict[str, list[str]]] = {
    "monolith": {"dataservice": _scopes("accounts", "runs", "sync"),
                 "stravaimport": _scopes("strava"), "reports": _scopes("reports")},
    "stravaimport": {"monolith": _scopes("accounts", "runs"),
                     "dataservice": _scopes("accounts", "runs")},
    "reports": {"monolith": _scopes("runs", kinds=("read",)),
                "dataservice": _scopes("runs", kinds=("read",))},
}


def _consistent(clients_file: Path, secrets_dir: Path) -> bool:
    """Every client of POLICY has a secret file whose hash the clients file holds."""
    if not clients_file.exists():
        return False
    try:
        clients = read_clients(clients_file)
        return all(client in clients and (secrets_dir / client).exists()
                   and hash_secret((secrets_dir / client).read_text().strip())
                   == clients[client].secret_sha256 for client in POLICY)
    except (ConfigError, OSError):
        return False  # written again from scratch below


def ensure(run_dir: Path) -> Path:
    """The secrets directory, with a clients file and one secret per client in POLICY."""
    secrets_dir = run_dir / "secrets"
    clients_file = run_dir / "clients.json"
    if _consistent(clients_file, secrets_dir):
        return secrets_dir
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for client, secret in write_clients_file(clients_file, POLICY).items():
        path = secrets_dir / client
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
    return secrets_dir
