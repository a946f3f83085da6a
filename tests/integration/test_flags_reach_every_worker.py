"""A flag changed with the CLI reaches every gunicorn gevent worker within a second, no restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from support import ROOT, free_port

pytestmark = pytest.mark.integration
WORKERS = 4


@pytest.fixture
def monolith(tmp_path):
    """The monolith alone under gunicorn with four gevent workers, on a free loopback port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    env.update(TURNOUT_RUN_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    log = (tmp_path / "gunicorn.log").open("w")
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(WORKERS),
         "--no-control-socket", "-b", f"127.0.0.1:{port}", "monolith.wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        workers = _wait_for_workers(master, url, tmp_path / "gunicorn.log")
        yield url, env, workers
    finally:
        master.send_signal(signal.SIGTERM)  # the gunicorn master we started, by its PID
        try:
            master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            master.kill()
        log.close()


def _wait_for_workers(master: subprocess.Popen, url: str, log: Path) -> set[int]:
    """Until every worker has answered once: a worker still importing the app when the
    test flips a flag would be timed on its boot, not on how flags reach it."""
    deadline = time.monotonic() + 30
    answered: set[int] = set()
    while time.monotonic() < deadline:
        workers = {child.pid for child in psutil.Process(master.pid).children()}
        answered.add(_answering_pid(url))
        if len(workers) == WORKERS and workers <= answered:
            return workers
        time.sleep(0.05)
    pytest.fail(f"gunicorn did not start {WORKERS} healthy workers (answered: {answered}):\n"
                f"{log.read_text()[-3000:]}")


def _answering_pid(url: str) -> int | None:
    try:
        return _seen_by_worker(url)[0]
    except requests.RequestException:
        return None


def _seen_by_worker(url: str) -> tuple[int, str]:
    # A new connection each time, so the kernel hands requests to every worker in turn.
    body = requests.get(f"{url}/healthz", timeout=2, headers={"Connection": "close"}).json()
    return body["pid"], body["flags"]["modes"]["runs"]


def _turnout(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "shims.cli", *args], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=60)


def test_every_worker_serves_the_new_mode(monolith):
    """Every worker takes the change up by itself. How fast is a figure, not a verdict: on a
    quiet machine within a second (bench B5 measures it); on a busy one, later."""
    url, env, workers = monolith
    took = []
    for mode, extra in (("shadow", ()), ("canary", ("--percent", "30")), ("local", ())):
        _turnout(env, "flags", "set", "runs", mode, *extra)
        changed_at = time.monotonic()
        lagging, elapsed = set(workers), 0.0
        while lagging and elapsed < 15.0:  # bounded
            pid, served = _seen_by_worker(url)
            if served == mode:
                lagging.discard(pid)
            elapsed = time.monotonic() - changed_at
        assert not lagging, f"workers {lagging} still not serving {mode} after {elapsed:.2f}s"
        took.append(f"{mode} {elapsed:.2f}s")
    print(f"\nthe last worker served the new mode after: {', '.join(took)}")
