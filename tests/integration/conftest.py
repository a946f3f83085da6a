"""Real processes under circusd, on free loopback ports, started and stopped by fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ROOT, free_port

PORT_NAMES = ("TURNOUT_CIRCUS_PORT", "TURNOUT_CIRCUS_PUBSUB_PORT", "TURNOUT_CIRCUS_STATS_PORT",
              "TURNOUT_MONOLITH_PORT", "TURNOUT_DATASERVICE_PORT", "TURNOUT_TOKENDEALER_PORT",
              "TURNOUT_STRAVAIMPORT_PORT", "TURNOUT_REPORTS_PORT", "TURNOUT_STRAVA_PORT")


@dataclass
class Stack:
    env: dict[str, str]
    run_dir: Path

    def url(self, port_name: str) -> str:
        return f"http://127.0.0.1:{self.env[port_name]}"

    @property
    def monolith(self) -> str:
        return self.url("TURNOUT_MONOLITH_PORT")

    def turnout(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """The `turnout` command on Runnerly's project file (turnout.toml at the root)."""
        return self._run("-m", "shims.cli", *args, check=check)

    def demo_data(self) -> subprocess.CompletedProcess:
        return self._run("-m", "scripts.demo_data", check=True)

    def _run(self, *args: str, check: bool) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=check)

    def circusctl(self, *args: str) -> str:
        """circusctl against this stack's circusd; fails the test if circus refuses."""
        endpoint = f"tcp://127.0.0.1:{self.env['TURNOUT_CIRCUS_PORT']}"
        done = subprocess.run([str(Path(sys.executable).parent / "circusctl"), "--endpoint",
                               endpoint, "--timeout", "30", *args], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"circusctl {' '.join(args)}: {done.stderr}{done.stdout}"
        return done.stdout

    def watcher_pids(self, watcher: str) -> list[int]:
        """The PIDs of one watcher's processes (gunicorn masters) and all their descendants
        (the workers): only processes of the circusd this fixture started."""
        import psutil

        masters = [int(pid) for pid in self.circusctl("list", watcher).replace(",", " ").split()]
        circusd = psutil.Process(self.circusd_pid())
        ours = {child.pid for child in circusd.children(recursive=True)}
        found = []
        for pid in masters:
            if pid not in ours and not psutil.pid_exists(pid):
                continue  # gone between the two looks (a reload, a kill)
            assert pid in ours, f"{watcher} pid {pid} is not a child of our circusd"
            found.append(pid)
            with suppress(psutil.NoSuchProcess):  # it may be dying as we look
                found.extend(child.pid for child in psutil.Process(pid).children(recursive=True))
        return found

    def circusd_pid(self) -> int | None:
        pidfile = self.run_dir / "circusd.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    """A module may set `STACK_ENV = {"TURNOUT_...": "..."}` to configure its stack."""
    run_dir = tmp_path_factory.mktemp("run")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    env.update({name: str(free_port()) for name in PORT_NAMES})
    env.update(TURNOUT_RUN_DIR=str(run_dir), TURNOUT_MONOLITH_WORKERS="2",
               TURNOUT_PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    env.update(getattr(request.module, "STACK_ENV", {}))
    stack = Stack(env=env, run_dir=run_dir)
    stack.demo_data()
    started = stack.turnout("up", "--wait", "60", check=False)
    if started.returncode != 0:
        _stop(stack)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}"
                         for p in sorted((run_dir / "logs").glob("*.log")))
        pytest.fail(f"turnout up failed: {started.stderr}\n{logs}")
    yield stack
    _stop(stack)


def _stop(stack: Stack) -> None:
    pid = stack.circusd_pid()
    stopped = stack.turnout("down", check=False)
    if stopped.returncode != 0 and pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # our own circusd, by the PID it wrote
