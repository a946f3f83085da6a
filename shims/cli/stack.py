"""Start, inspect and stop a project's processes under circusd.

The processes are circus.ini's watchers (shims/cli/circus.py); each one that serves on a
circus socket is healthy when `http://HOST:PORT/healthz` answers 200. circus.ini takes its
ports, paths and sizes from environment variables (circus has no default syntax for
`$(circus.env.X)`), so `turnout up` fills in what the user did not set: the kit's own
three (`TURNOUT_HOME`, `TURNOUT_RUN_DIR`, `TURNOUT_PYTHON`), the project's `[env]`
defaults, and `TURNOUT_<SERVICE>_URL` for each registry feature whose service is a watcher
with a socket. Anyone may instead export the variables and run circusd themselves.

circusd listens for commands on `ipc://` sockets in `$TURNOUT_RUN_DIR/circus` (0700, the
operator's: no other local user can connect), and run as root it starts every process as the
app user (shims/cli/app_user.py) with the run directory laid out as shims/cli/run_dir.py says.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
# Runs circusd/circusctl from this venv, fixed argv.
import subprocess  # nosec B404
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import requests

from shims.cli import app_user, run_dir as run_dirs
from shims.cli.circus import CircusConfig, Socket, Watcher
from shims.cli.project import Project, check_numbers, with_defaults
from shims.settings import ENV_PREFIX

# `turnout status` waits this long per process: a busy but working process must not read as
# down. Startup polls with a short timeout instead, since it retries anyway.
STATUS_TIMEOUT = 5.0
HEALTH_PATH = "/healthz"
# Where circus.ini puts circusd's ipc:// endpoints and its pid file.
CIRCUS_DIR_VARIABLE = "TURNOUT_CIRCUS_DIR"
PIDFILE = "circusd.pid"


class StackError(RuntimeError):
    """The stack could not be started or reached; the message says what to do."""


def environment(project: Project, environ: Mapping[str, str]) -> dict[str, str]:
    """What circusd and its processes get: the environment, then the kit's own variables,
    then the project's `[env]` defaults."""
    env = dict(environ)
    env.setdefault("TURNOUT_HOME", str(project.root))
    env.setdefault("TURNOUT_RUN_DIR", str(project.root / "run"))
    env["TURNOUT_RUN_DIR"] = str(Path(env["TURNOUT_RUN_DIR"]).resolve())
    env.setdefault(CIRCUS_DIR_VARIABLE, str(Path(env["TURNOUT_RUN_DIR"]) / run_dirs.CONTROL))
    env.setdefault("TURNOUT_PYTHON", sys.executable)
    # The workers follow this file's [gates] and [guard] (shims/gates/config.py).
    env.setdefault("TURNOUT_PROJECT", str(project.file.path))
    for name, value in app_user.process_ids(None).items():
        env.setdefault(name, value)  # `turnout up` names the app user, as root
    where = project.file.path.name
    env = with_defaults(env, project.file.env, where)
    check_numbers(env, project.file.numeric, where)
    return env


def with_service_urls(env: dict[str, str], registry: Any, circus: CircusConfig) -> dict[str, str]:
    """Each extracted service's URL where circus serves it, unless set: the monolith, its
    services and this command then agree on every port from one place."""
    for feature in registry:
        watcher = circus.watcher(feature.service) if feature.service else None
        if watcher is not None and watcher.url:
            env.setdefault(ENV_PREFIX + feature.url_setting, watcher.url)
    return env


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name} is not installed; pip install the kit (it brings circus)")
    return found


def start(circus: CircusConfig, env: dict[str, str], *, wait: float = 60.0,
          before_up: Callable[[Path], Any] | None = None,
          before_up_path: str | None = None) -> None:
    """circusd with every process, once nothing stands in the way. `before_up` is the
    project's hook (`before_up_path` its import path, to run it as the app user)."""
    require_private_endpoint(circus)
    run_dir = Path(env["TURNOUT_RUN_DIR"])
    user = app_user.resolve(env)
    env.update(app_user.process_ids(user))
    if user is not None:
        require_confined(circus)
        app_user.check_can_run(user, env["TURNOUT_PYTHON"], env["TURNOUT_HOME"], run_dir, env)
    # What this command and circusd create is private from the start (circusd's log, the
    # hook's secrets); circus.ini's [circus] umask does the same for every process.
    previous = os.umask(0o077)
    try:
        _start(circus, env, run_dir, user, wait, before_up, before_up_path)
    finally:
        os.umask(previous)


def require_private_endpoint(circus: CircusConfig) -> None:
    """circusd obeys whoever reaches its control endpoint, with no authentication: on a TCP
    port (circus's default when circus.ini names none) every local user could make it start
    any command as the operator. Refused, with the fix."""
    if not circus.endpoint.startswith("ipc://"):
        raise StackError(
            f"{circus.path.name}'s [circus] endpoint is {circus.endpoint}, which every local "
            "user can reach (circusd asks for no credentials): set `endpoint = "
            "ipc://$(circus.env.TURNOUT_CIRCUS_DIR)/control.sock` (and the same for "
            "pubsub_endpoint and stats_endpoint; docs/operations.md, \"Processes, users and "
            "files\")")


def require_confined(circus: CircusConfig) -> None:
    """Run as root, a watcher without `uid` would run as root: refused, with the fix."""
    unconfined = [w.name for w in circus.watchers if not w.sets_uid]
    if unconfined:
        raise StackError(
            f"turnout runs as root, but [watcher:{unconfined[0]}] in {circus.path.name} sets no "
            "uid, so it would run as root: add `uid = $(circus.env.TURNOUT_PROCESS_UID)` and "
            "`gid = $(circus.env.TURNOUT_PROCESS_GID)` to it (docs/operations.md, \"Processes, "
            "users and files\")")


def _start(circus: CircusConfig, env: dict[str, str], run_dir: Path,
           user: app_user.AppUser | None, wait: float, before_up: Callable[[Path], Any] | None,
           before_up_path: str | None) -> None:
    run_dirs.prepare(run_dir, user)
    control = Path(env[CIRCUS_DIR_VARIABLE])
    if control != run_dir / run_dirs.CONTROL:
        run_dirs.operator_dir(control, os.geteuid())
    if circus_answers(circus.endpoint, env):
        other = f"set {circus.endpoint_variable}" if circus.endpoint_variable else \
            f"change [circus] endpoint in {circus.path.name}"
        raise StackError(f"a circusd already answers on {circus.endpoint}; "
                         f"run `turnout down` first or {other}")
    for sock in circus.sockets.values():
        _require_free(sock, circus)
    # Counters of a previous run must not add up with this one's (see shims/gunicorn_conf.py).
    # rmtree does not follow symlinks (shutil.rmtree.avoids_symlink_attacks on Linux).
    shutil.rmtree(run_dir / "metrics", ignore_errors=True)
    if before_up is not None:  # e.g. the team's token secrets, which its processes read
        if user is not None and before_up_path is not None:
            app_user.call_hook_as(user, before_up_path, run_dir, env["TURNOUT_PYTHON"],
                                  env["TURNOUT_HOME"], env)
        else:
            before_up(run_dir)
    # A daemon circusd with no [circus] logoutput keeps writing to our stdout and dies of
    # a broken pipe once this command has exited (seen when up ran under a program that
    # captured its output): give it the run directory's log instead.
    logs = [] if circus.logs_itself else ["--log-output", str(run_dir / "logs" / "circusd.log")]
    started = subprocess.run([_bin("circusd"), "--daemon", *logs, "--pidfile",  # nosec B603
                              str(control / PIDFILE), str(circus.path)],
                             env=env, check=False, cwd=env["TURNOUT_HOME"])
    if started.returncode != 0:
        raise StackError(f"circusd did not start (exit code {started.returncode}); see "
                         f"{run_dir}/logs/circusd.log")
    wait_healthy(circus.watchers, run_dir, wait)
    # The daemon chmods its pid file 0644 whatever the umask, once it runs (after `circusd
    # --daemon` returns): private like everything here, once the processes answer.
    with suppress(FileNotFoundError):
        (control / PIDFILE).chmod(0o600)


def _require_free(sock: Socket, circus: CircusConfig) -> None:
    """circusd would fail to bind a taken port, and the process answering on it could pass
    for ours: refused before anything starts."""
    if sock.port is None:
        return
    how = f"set {sock.port_variable}" if sock.port_variable else \
        f"change [socket:{sock.name}] in {circus.path.name}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(sock.host, sock.port,
                                                             type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe_socket:
            probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe_socket.bind(address)
    except socket.gaierror as exc:
        raise StackError(f"[socket:{sock.name}] host {sock.host!r} does not resolve "
                         f"({exc.strerror}); {how}") from None
    except OSError as exc:
        problem = "is in use" if exc.errno == errno.EADDRINUSE else \
            f"cannot be bound ({exc.strerror})"
        raise StackError(f"port {sock.port} of [socket:{sock.name}] {problem} on {sock.host}: "
                         f"stop what holds it, or {how}") from None


def wait_healthy(watchers: tuple[Watcher, ...], run_dir: Path, timeout: float) -> None:
    """Bounded wait until every process with a socket answers /healthz with 200."""
    deadline = time.monotonic() + timeout
    pending = [w for w in watchers if w.url]
    while pending and time.monotonic() < deadline:
        pending = [w for w in pending if probe(w.url, timeout=1.0) is not None]
        if pending:
            time.sleep(0.2)
    if pending:
        names = ", ".join(w.name for w in pending)
        raise StackError(f"not healthy after {timeout:.0f}s: {names}; see {run_dir}/logs/")


def probe(url: str, *, timeout: float = STATUS_TIMEOUT) -> str | None:
    """None when `url`/healthz answers 200, else what went wrong, in a few words."""
    try:
        response = requests.get(f"{url}{HEALTH_PATH}", timeout=timeout)
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.ConnectionError:
        return "refused the connection"
    except requests.RequestException as exc:
        return type(exc).__name__
    if response.status_code == 200:
        return None
    return f"answered {response.status_code} {response.text[:120].strip()}"


def circusctl(endpoint: str, env: Mapping[str, str], *args: str, check: bool = True) -> str:
    result = subprocess.run([_bin("circusctl"), "--endpoint", endpoint, "--timeout", "10",  # nosec B603
                             *args], env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[0]
        raise StackError(f"circusctl {' '.join(args)} failed on {endpoint}: {detail}")
    return result.stdout


def circus_answers(endpoint: str, env: Mapping[str, str]) -> bool:
    result = subprocess.run([_bin("circusctl"), "--endpoint", endpoint, "--timeout", "1",  # nosec B603
                             "status"], env=env, capture_output=True, text=True, check=False)
    return result.returncode == 0


def require_circus(endpoint: str, env: Mapping[str, str], hint: str = "") -> None:
    if not circus_answers(endpoint, env):
        raise StackError(f"no circusd answers on {endpoint}{hint}")


def stop(endpoint: str, env: Mapping[str, str]) -> None:
    require_circus(endpoint, env)
    circusctl(endpoint, env, "quit", "--waiting")


def status(watchers: tuple[Watcher, ...]) -> list[tuple[str, str | None, str | None]]:
    """(name, url, problem) per process; problem is None for a healthy one, and for one
    with no socket to check (url None)."""
    return [(w.name, w.url, probe(w.url) if w.url else None) for w in watchers]
