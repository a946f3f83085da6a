"""Extracted services under gunicorn for the `http` sides of the contract suites: started
together on free loopback ports, waited for (bounded), stopped by their PIDs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support import ROOT, free_port

HEALTHY_WITHIN_S = 20.0
STOP_WITHIN_S = 10.0


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name}: {self.log_path}\n{text[-3000:]}"


def fail_if_dead(servers: list[Server]) -> None:
    dead = [server for server in servers if server.process.poll() is not None]
    if dead:
        pytest.fail("exited: " + ", ".join(f"{s.name} ({s.process.returncode})" for s in dead)
                    + "\n" + "\n".join(s.log() for s in dead))


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


def launch(name: str, target: str, port: int, run_dir: Path, **env: str) -> Server:
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("TURNOUT_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(PYTHONPATH=str(ROOT), **env)
    log_path = run_dir / f"{name}.log"
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1",
               "--no-control-socket", "--graceful-timeout", "5", "-b", f"127.0.0.1:{port}",
               target]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log,
                                   stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}", process, log_path)


def wait_healthy(servers: list[Server]) -> None:
    """Every server's /healthz answers 200 within HEALTHY_WITHIN_S, all together."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    waiting = list(servers)
    last: dict[str, str] = {}
    while waiting and time.monotonic() < deadline:
        for server in list(waiting):
            if server.process.poll() is not None:
                pytest.fail(f"{server.name} exited with status {server.process.returncode}"
                            f"\n{server.log()}")
            try:
                reply = requests.get(f"{server.url}/healthz", timeout=1)
                if reply.status_code == 200:
                    waiting.remove(server)
                    continue
                last[server.name] = f"/healthz answered {reply.status_code}"
            except requests.RequestException as exc:
                last[server.name] = type(exc).__name__
        time.sleep(0.1)
    if waiting:
        pytest.fail(f"not healthy within {HEALTHY_WITHIN_S:g}s: "
                    + ", ".join(f"{s.name} ({last.get(s.name, 'no answer')})" for s in waiting)
                    + "\n" + "\n".join(s.log() for s in waiting))


def stop(servers: list[Server]) -> None:
    """SIGTERM each gunicorn master by its PID, together; SIGKILL any still up after
    STOP_WITHIN_S."""
    for server in servers:
        if server.process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGTERM)
    for server in servers:
        try:
            server.process.wait(timeout=STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=STOP_WITHIN_S)
