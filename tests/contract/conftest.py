"""The contract suite's three sides: the same tests run against each of them.

- `local`: LocalAccounts, LocalRuns (keyed, as the monolith and the data service serve
  them) and LocalRunsSync on a fresh SQLite file.
- `wsgi`: the remote clients talking to the data service in this process (no sockets).
- `http`: the remote clients talking to the data service under gunicorn, for real.

Local and WSGI get a fresh database per test. The HTTP service is started once per
test module and its database is shared by that module's tests, so every test makes
its own users (unique emails) and never counts rows it did not create.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import SessionTokens
import requests

from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_engine, make_sessions
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync
from contracts.accounts import ACCOUNTS, RemoteAccounts
from contracts.runs import RUNS, RemoteRuns
from shims.outcomes import Keyed, OutcomeStore
from shims.sync import RemoteDataSync
from shims.transport import HttpTransport, Reply, Transport, WsgiTransport
from tests.contract.support import FAST_HASH, RACERS, Side, dataservice_app

ROOT = Path(__file__).resolve().parents[2]
SIDES = ("local", "wsgi", "http")
HEALTHY_WITHIN_S = 20.0
STOP_WITHIN_S = 10.0


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return f"--- {self.log_path}\n{self.log_path.read_text(errors='replace')[-4000:]}"

    def check_alive(self) -> None:
        """A gunicorn whose worker failed to boot shuts down whole: say so, not 'refused'."""
        if self.process.poll() is not None:
            pytest.fail(f"the data service exited with status {self.process.returncode}\n"
                        f"{self.log()}")


@pytest.fixture(scope="module")
def dataservice(tmp_path_factory) -> Iterator[RunningService]:
    """The data service under gunicorn (gevent workers) on a free loopback port, with a
    fresh database for each test module."""
    run_dir = tmp_path_factory.mktemp("dataservice")
    log_path = run_dir / "gunicorn.log"
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TURNOUT_") and key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(TURNOUT_DATASERVICE_DATABASE_URL=f"sqlite:///{run_dir / 'dataservice.db'}",
               TURNOUT_PASSWORD_HASH_METHOD=FAST_HASH, TURNOUT_RUN_DIR=str(run_dir),
               TURNOUT_TOKEN_JWKS_URL=os.environ["TURNOUT_TOKEN_JWKS_URL"],
               PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2",
               "--no-control-socket", "-b", f"127.0.0.1:{port}",
               "extracted.dataservice.wsgi:app"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{port}", process, log_path)
    try:
        problem = _wait_healthy(process, service.url)
        if problem:
            pytest.fail(f"the data service did not get healthy: {problem}\n{service.log()}")
        yield service
        service.check_alive()  # it must have lived through the module's tests
    finally:
        _stop(process)


@pytest.fixture
def dataservice_url(request) -> str:
    service = request.getfixturevalue("dataservice")
    service.check_alive()
    return service.url


def _wait_healthy(process: subprocess.Popen, url: str) -> str | None:
    """None once /healthz answers 200; otherwise why not, after at most HEALTHY_WITHIN_S."""
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"gunicorn exited with status {process.returncode}"
        try:
            reply = requests.get(f"{url}/healthz", timeout=1)
            if reply.status_code == 200:
                return None
            last = f"/healthz answered {reply.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    return f"not healthy within {HEALTHY_WITHIN_S:g}s ({last})"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM our gunicorn master by its PID; SIGKILL if it has not exited in time."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_WITHIN_S)


def _local(tmp_path: Path) -> Iterator[Side]:
    engine = make_engine(f"sqlite:///{tmp_path / 'local.db'}")
    create_schema(engine)
    sessions = make_sessions(engine)
    store = OutcomeStore(engine)
    store.create_schema()
    try:
        yield Side("local", Keyed(LocalAccounts(sessions, hash_method=FAST_HASH), ACCOUNTS, store),
                   Keyed(LocalRuns(sessions), RUNS, store), LocalRunsSync(engine))
    finally:
        engine.dispose()


def _remote(name: str, transport: Transport) -> Side:
    return Side(name, RemoteAccounts(transport), RemoteRuns(transport), RemoteDataSync(transport))


@pytest.fixture(params=SIDES)
def side(request, tmp_path) -> Iterator[Side]:
    """Each contract test runs once per side, with the very same assertions."""
    if request.param == "local":
        yield from _local(tmp_path)
    elif request.param == "wsgi":
        app = dataservice_app(tmp_path)
        try:
            yield _remote("wsgi", WsgiTransport(app, tokens=SessionTokens()))
        finally:
            app.extensions["turnout_engine"].dispose()
    else:
        url = request.getfixturevalue("dataservice_url")
        # closed after: gunicorn stops sooner
        with closing(HttpTransport(url, pool_size=RACERS, tokens=SessionTokens())) as transport:
            yield _remote("http", transport)


@dataclass
class Wire:
    """Raw access to the data service, for what only the wire can send."""

    transport: Transport
    get: Callable[[str], tuple[int, Any]]  # path -> (status, decoded JSON body)
    post_bytes: Callable[[str, bytes], tuple[int, Any]]  # a body that need not be JSON

    def post(self, path: str, payload: Any) -> Reply:
        return self.transport.post(path, payload)


@pytest.fixture(params=("wsgi", "http"))
def wire(request, tmp_path) -> Iterator[Wire]:
    if request.param == "wsgi":
        app = dataservice_app(tmp_path)
        client = app.test_client()

        def get(path: str) -> tuple[int, Any]:
            response = client.get(path)
            return response.status_code, response.get_json(silent=True)

        def post_bytes(path: str, body: bytes) -> tuple[int, Any]:
            response = client.post(path, data=body, content_type="application/json",
                                   headers=SessionTokens().headers())
            return response.status_code, response.get_json(silent=True)

        try:
            yield Wire(WsgiTransport(app, tokens=SessionTokens()), get, post_bytes)
        finally:
            app.extensions["turnout_engine"].dispose()
    else:
        url = request.getfixturevalue("dataservice_url")

        def get(path: str) -> tuple[int, Any]:
            response = requests.get(f"{url}{path}", timeout=5)
            return response.status_code, response.json()

        def post_bytes(path: str, body: bytes) -> tuple[int, Any]:
            response = requests.post(f"{url}{path}", data=body, timeout=5,
                                     headers={"Content-Type": "application/json",
                                              **SessionTokens().headers()})
            return response.status_code, response.json()

        with closing(HttpTransport(url, pool_size=1, tokens=SessionTokens())) as transport:
            yield Wire(transport, get, post_bytes)


@pytest.fixture
def local_source(tmp_path) -> Iterator[Side]:
    """A second, local side to copy rows from, as `turnout data copy` and mirrored writes do."""
    directory = tmp_path / "source"
    directory.mkdir()
    yield from _local(directory)
