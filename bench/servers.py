"""Start gunicorn apps on free loopback ports, pinned to a CPU; wait for /healthz; stop by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU = 0
# The hooks every Turnout app ships with (circus.ini, `turnout new-service`): a benchmark
# measures the workers as they run in production, e.g. with the loaded app frozen out of
# the garbage collector (shims/heap.py), which B4's tail latency depends on.
PRODUCT_CONFIG = "python:shims.gunicorn_conf"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Server:
    """One gunicorn master and its workers, ours alone (stopped by the PID we started)."""

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path, *,
                 worker: str = "gevent", workers: int = 1, cpu: int | None = SERVER_CPU,
                 extra: tuple[str, ...] = (), health: str = "/healthz",
                 config: str = PRODUCT_CONFIG):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.health = health
        command = [sys.executable, "-m", "gunicorn", "-c", config, "-k", worker, "-w", str(workers),
                   "--no-control-socket", "-b", f"127.0.0.1:{self.port}",
                   "--graceful-timeout", "3", "--timeout", "60", *extra, app]
        if cpu is not None and cpu < os.cpu_count():
            command = ["taskset", "-c", str(cpu), *command]
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 45.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if len(self.worker_pids()) == self.workers and self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n"
                           f"{self.log_path.read_text()[-3000:]}")

    def _answers(self) -> bool:
        try:
            return requests.get(self.url + self.health, timeout=1,
                                headers={"Connection": "close"}).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()
                    if c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master we started, by its PID
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Server:
        return self.wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
