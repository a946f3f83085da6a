"""Real processes under circusd, on free loopback ports, started and stopped by fixtures.

Run as root (as CI runs), `turnout up` starts every process as the app user (`turnout`,
made by scripts/bootstrap.sh), which cannot enter pytest's own tmp directories
(/tmp/pytest-of-root is 0700): stacks and projects live in `reachable_dir()` instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ROOT, free_port

PORT_NAMES = ("TURNOUT_MONOLITH_PORT", "TURNOUT_DATASERVICE_PORT", "TURNOUT_TOKENDEALER_PORT",
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
        endpoint = self.control_endpoint
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

    @property
    def control_endpoint(self) -> str:
        """circusd's control socket, as circus.ini names it (operator only)."""
        return f"ipc://{self.run_dir / 'circus' / 'control.sock'}"

    def circusd_pid(self) -> int | None:
        pidfile = self.run_dir / "circus" / "circusd.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None


def reachable_dir(prefix: str) -> Path:
    """A fresh directory that any local user may enter (not list): the app user must reach
    the run directory and a project's code inside it. The caller removes it."""
    made = Path(tempfile.mkdtemp(prefix=prefix))
    made.chmod(0o711)
    return made


@pytest.fixture
def reachable_tmp():
    made = reachable_dir("turnout-test-")
    made.chmod(0o755)  # a project copied in here is read by the app user
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(request):
    """A module may set `STACK_ENV = {"TURNOUT_...": "..."}` to configure its stack."""
    base = reachable_dir("turnout-stack-")
    run_dir = base / "run"
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
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"turnout up failed: {started.stderr}\n{logs}")
    yield stack
    _stop(stack)
    shutil.rmtree(base, ignore_errors=True)


def _stop(stack: Stack) -> None:
    pid = stack.circusd_pid()
    stopped = stack.turnout("down", check=False)
    if stopped.returncode != 0 and pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # our own circusd, by the PID it wrote
