"""Start, inspect and stop the whole system under circusd.

circus.ini takes every port, path and size from `TURNOUT_*` environment
variables (circus has no default syntax for `$(circus.env.X)`), so this module
fills in the loopback defaults a user did not set, checks them, and then runs
circusd. Anyone may instead export the variables and run circusd themselves.
"""

from __future__ import annotations

import os
import shutil
# Runs circusd/circusctl from this venv, fixed argv.
import subprocess  # nosec B404
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from scripts import service_secrets

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Process:
    name: str
    port_variable: str
    default_port: int

    def url(self, env: dict[str, str]) -> str:
        return f"http://{env['TURNOUT_HOST']}:{env[self.port_variable]}"


PROCESSES = (
    Process("monolith", "TURNOUT_MONOLITH_PORT", 5000),
    Process("dataservice", "TURNOUT_DATASERVICE_PORT", 5010),
    Process("tokendealer", "TURNOUT_TOKENDEALER_PORT", 5020),
    Process("stravaimport", "TURNOUT_STRAVAIMPORT_PORT", 5030),
    Process("reports", "TURNOUT_REPORTS_PORT", 5040),
    Process("stravadev", "TURNOUT_STRAVA_PORT", 5090),
)

PORT_VARIABLES = {
    "TURNOUT_CIRCUS_PORT": 5555,
    "TURNOUT_CIRCUS_PUBSUB_PORT": 5556,
    "TURNOUT_CIRCUS_STATS_PORT": 5557,
    **{process.port_variable: process.default_port for process in PROCESSES},
}
COUNT_VARIABLES = {"TURNOUT_MONOLITH_WORKERS": 2, "TURNOUT_SERVICE_WORKERS": 2,
                   "TURNOUT_WORKER_CONNECTIONS": 200}


# `turnout status` waits this long per process: a busy but working process must not read as
# down. Startup polls with a short timeout instead, since it retries anyway.
STATUS_TIMEOUT = 5.0


class StackError(RuntimeError):
    """The stack could not be started or reached; the message says what to do."""


def stack_environment(home: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env.setdefault("TURNOUT_HOME", str(home.resolve()))
    env.setdefault("TURNOUT_RUN_DIR", str(home.resolve() / "run"))
    env["TURNOUT_RUN_DIR"] = str(Path(env["TURNOUT_RUN_DIR"]).resolve())
    env.setdefault("TURNOUT_PYTHON", sys.executable)
    env.setdefault("TURNOUT_HOST", HOST)
    for name, default in {**PORT_VARIABLES, **COUNT_VARIABLES}.items():
        env.setdefault(name, str(default))
        _check_number(name, env[name], 65535 if name in PORT_VARIABLES else 10_000)
    host = env["TURNOUT_HOST"]

    def url(port_variable: str) -> str:
        return f"http://{host}:{env[port_variable]}"

    env.setdefault("TURNOUT_STRAVA_URL", url("TURNOUT_STRAVA_PORT"))
    env.setdefault("TURNOUT_DATASERVICE_URL", url("TURNOUT_DATASERVICE_PORT"))
    env.setdefault("TURNOUT_STRAVAIMPORT_URL", url("TURNOUT_STRAVAIMPORT_PORT"))
    env.setdefault("TURNOUT_REPORTS_URL", url("TURNOUT_REPORTS_PORT"))
    env.setdefault("TURNOUT_STRAVAIMPORT_DATA_URL", url("TURNOUT_MONOLITH_PORT"))
    env.setdefault("TURNOUT_REPORTS_DATA_URL", url("TURNOUT_MONOLITH_PORT"))
    env.setdefault("TURNOUT_TOKEN_URL", url("TURNOUT_TOKENDEALER_PORT") + "/oauth/token")
    env.setdefault("TURNOUT_TOKEN_JWKS_URL",
                   url("TURNOUT_TOKENDEALER_PORT") + "/.well-known/jwks.json")
    return env


def _check_number(name: str, raw: str, highest: int) -> None:
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise StackError(f"{name} must be a whole number from 1 to {highest}, got {raw!r}")


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name} is not installed; run scripts/start or pip install -r "
                         "requirements.txt")
    return found


def endpoint(env: dict[str, str]) -> str:
    return f"tcp://{HOST}:{env['TURNOUT_CIRCUS_PORT']}"


def start(config: Path, env: dict[str, str], *, wait: float = 60.0) -> None:
    run_dir = Path(env["TURNOUT_RUN_DIR"])
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    if _circus_answers(env):
        raise StackError(f"a circusd already answers on {endpoint(env)}; "
                         "run `turnout down` first or set TURNOUT_CIRCUS_PORT")
    # Counters of a previous run must not add up with this one's (see shims/gunicorn_conf.py).
    shutil.rmtree(run_dir / "metrics", ignore_errors=True)
    service_secrets.ensure(run_dir)  # each process reads its own from secrets/<client>
    subprocess.run([_bin("circusd"), "--daemon", "--pidfile", str(run_dir / "circusd.pid"),  # nosec B603
                    str(config)], env=env, check=True, cwd=env["TURNOUT_HOME"])
    wait_healthy(env, wait)


def wait_healthy(env: dict[str, str], timeout: float) -> None:
    """Bounded wait until every process answers /healthz with 200."""
    deadline = time.monotonic() + timeout
    pending = list(PROCESSES)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if probe(p.url(env), timeout=1.0) is not None]
        if pending:
            time.sleep(0.2)
    if pending:
        names = ", ".join(p.name for p in pending)
        raise StackError(f"not healthy after {timeout:.0f}s: {names}; see "
                         f"{env['TURNOUT_RUN_DIR']}/logs/")


def probe(url: str, *, timeout: float = STATUS_TIMEOUT) -> str | None:
    """None when `url`/healthz answers 200, else what went wrong, in a few words."""
    try:
        response = requests.get(f"{url}/healthz", timeout=timeout)
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.ConnectionError:
        return "refused the connection"
    except requests.RequestException as exc:
        return type(exc).__name__
    if response.status_code == 200:
        return None
    return f"answered {response.status_code} {response.text[:120].strip()}"


def circusctl(env: dict[str, str], *args: str, check: bool = True) -> str:
    result = subprocess.run([_bin("circusctl"), "--endpoint", endpoint(env), "--timeout", "10",  # nosec B603
                             *args], env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise StackError(f"circusctl {' '.join(args)} failed: {detail}")
    return result.stdout


def _circus_answers(env: dict[str, str]) -> bool:
    result = subprocess.run([_bin("circusctl"), "--endpoint", endpoint(env), "--timeout", "1",  # nosec B603
                             "status"], env=env, capture_output=True, text=True, check=False)
    return result.returncode == 0


def stop(env: dict[str, str]) -> None:
    if not _circus_answers(env):
        raise StackError(f"no circusd answers on {endpoint(env)}")
    circusctl(env, "quit", "--waiting")


def status(env: dict[str, str]) -> list[tuple[str, str, str | None]]:
    """(name, url, problem) per process; problem is None for a healthy one."""
    return [(p.name, p.url(env), probe(p.url(env))) for p in PROCESSES]
