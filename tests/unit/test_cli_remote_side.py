"""The `turnout` command's data sides for a registry that gives no `DataPath.service_sync`:
the monolith's side on the database turnout.toml names, the service's over its `/rpc` sync
contract at `<SERVICE>_URL`. Copy, verify and a stage move run through them as they do
database to database for Runnerly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from gevent.pywsgi import WSGIServer

from contracts.accounts import Profile, SignUp
from contracts.runs import RunInput
from extracted.dataservice.app import create_app
from monolith.accounts.service import LocalAccounts
from monolith.db import create_schema, make_sessions
from monolith.runs.service import LocalRuns
from monolith.runs.sync import LocalRunsSync, RunsMirror
from monolith.wiring import REGISTRY
from shims.cli import data
from shims.cli.project import Project, ProjectFile
from shims.cli.sides import DataSides
from shims.defaults import kit_settings
from shims.flags.model import Flag
from shims.mirror import LOCAL, REMOTE
from shims.registry import DataPath, Feature, Registry
from shims.settings import ConfigError
from shims.sql import make_engine
from shims.stages import StageMover, plan_move
from shims.sync import RemoteDataSync

FAST_HASH = "pbkdf2:sha256:1000"
TABLES = {"users": "user", "runs": "run"}


def local_sync(engine) -> LocalRunsSync:
    create_schema(engine)
    return LocalRunsSync(engine)


RUNS = REGISTRY["runs"]
OVER_RPC = Registry([Feature("runs", service="dataservice", url="http://127.0.0.1:9",
                             bindings=RUNS.bindings,
                             data=DataPath(local_sync=local_sync, mirror=RunsMirror(),
                                           tables=TABLES))])


@pytest.fixture
def service_url(tmp_path):
    """The data service on its own database, served over HTTP on a free loopback port (no
    token check: this command has no client secret)."""
    app = create_app({"DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
                      "RUN_DIR": str(tmp_path), "PASSWORD_HASH_METHOD": FAST_HASH},
                     guard=lambda method: None)
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=1)
    app.extensions["turnout_engine"].dispose()


def project_for(tmp_path: Path, settings: dict, database: str | None = "DATABASE_URL"):
    project = Project(ProjectFile(path=tmp_path / "turnout.toml", registry="app:REGISTRY",
                                  settings=None, circus="circus.ini", database=database, env={},
                                  numeric=frozenset(), hooks={}))
    project.registry = OVER_RPC  # what the cached properties would have loaded
    project.settings = settings
    return project


@pytest.fixture
def monolith_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'monolith.db'}"
    engine = make_engine(url, pool_size=2)
    create_schema(engine)
    sessions = make_sessions(engine)
    accounts, runs = LocalAccounts(sessions, hash_method=FAST_HASH), LocalRuns(sessions)
    for name in ("ada", "bob"):
        user = accounts.sign_up(SignUp(email=f"{name}@example.com", password="correct-horse-9",
                                       profile=Profile(first_name=name)))
        runs.add_run(user.id, RunInput(name="Tempo", distance=8000.0, elapsed_time=2400,
                                       start_date=dt.datetime(2026, 5, 17, 7, 30)))
    engine.dispose()
    return url


def test_copy_and_verify_reach_the_service_over_rpc(tmp_path, service_url, monolith_url):
    settings = kit_settings(OVER_RPC, {"DATABASE_URL": monolith_url, "RUN_DIR": str(tmp_path),
                                       "DATASERVICE_URL": service_url}, environ={})
    sides = DataSides(project_for(tmp_path, settings))
    channels = sides.channels(OVER_RPC["runs"])
    assert isinstance(channels[REMOTE].target, RemoteDataSync)
    assert isinstance(channels[LOCAL].target, LocalRunsSync)

    monolith, service = channels[REMOTE].source, channels[LOCAL].source
    before = data.verify(monolith, service, TABLES, settle_seconds=0)
    assert all(d.in_flight for d in before)  # in the monolith's outbox, not yet delivered
    done = data.copy(channels[REMOTE], TABLES, catch_up_seconds=5)
    assert (done.snapshot_rows, done.refused, done.backlog_left) == (4, [], 0)
    assert data.report(data.verify(monolith, service, TABLES)) == [
        "users  monolith       2  service       2  same",
        "runs   monolith       2  service       2  same"]

    # A stage move drains through the same channels: nothing waits, so shadow -> canary moves.
    moved = StageMover(channels, lambda: Flag("runs", "canary", 30.0), settle_seconds=0)
    assert moved.move(plan_move(Flag("runs", "shadow"), Flag("runs", "canary", 30.0))) == \
        Flag("runs", "canary", 30.0)
    sides.close()


def test_without_a_database_setting_the_command_says_which_key(tmp_path, service_url):
    settings = kit_settings(OVER_RPC, {"RUN_DIR": str(tmp_path), "DATASERVICE_URL": service_url},
                            environ={})
    with pytest.raises(ConfigError, match="feature 'runs' owns data: set `database` in"):
        DataSides(project_for(tmp_path, settings, database=None)).channels(OVER_RPC["runs"])
    with pytest.raises(ConfigError, match="database = 'DATABASE_URL', but the app's settings "
                                          "have no DATABASE_URL"):
        DataSides(project_for(tmp_path, settings)).channels(OVER_RPC["runs"])
