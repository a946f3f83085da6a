"""circus.ini as the `turnout` command reads it (watchers, their sockets, `$(circus.env.X)`
resolved as circusd resolves it), and the environment `turnout up` gives circusd: the kit's
own variables, the project's [env] defaults, each service's URL from its socket."""

from __future__ import annotations

import socket
import sys
import textwrap
from contextlib import closing

import pytest

from shims.cli import stack
from shims.cli.circus import CircusConfig, Socket, read_circus
from shims.cli.project import Project, ProjectFile, check_numbers, read, with_defaults
from shims.settings import ConfigError
from support import ROOT, free_port

CIRCUS_INI = """
[circus]
endpoint = tcp://127.0.0.1:$(circus.env.APP_CIRCUS_PORT)
check_delay = 1

[socket:web]
host = $(circus.env.APP_HOST)
port = $(circus.env.APP_WEB_PORT)

[socket:Profiles]
host = 0.0.0.0
port = ((circus.env.app_profiles_port))

[socket:spare]
path = /tmp/app.sock

[watcher:web]
cmd = $(circus.env.APP_PYTHON) -m gunicorn
args = -b fd://$(circus.sockets.web) app.wsgi:app
use_sockets = True

[watcher:profiles]
cmd = gunicorn -b fd://$(circus.sockets.PROFILES) profiles.wsgi:app
numprocesses = $(circus.env.APP_COPIES)

[watcher:spare]
cmd = uwsgi

[watcher:worker]
cmd = python -m app.worker

[env:web]
SECRET_FILE = $APP_RUN_DIR/secret
"""

ENV = {"APP_CIRCUS_PORT": "6555", "APP_HOST": "127.0.0.1", "APP_WEB_PORT": "6000",
       "APP_PROFILES_PORT": "6010", "APP_PYTHON": "python3", "APP_COPIES": "2"}


def circus(tmp_path, text=CIRCUS_INI, **env) -> CircusConfig:
    path = tmp_path / "circus.ini"
    path.write_text(textwrap.dedent(text))
    return read_circus(path, {**ENV, **env})


def refusal(tmp_path, text=CIRCUS_INI, **env) -> str:
    with pytest.raises(ConfigError) as refused:
        circus(tmp_path, text, **env)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_watchers_in_the_files_order_each_with_the_socket_it_serves_on(tmp_path):
    config = circus(tmp_path)
    assert [w.name for w in config.watchers] == ["web", "profiles", "spare", "worker"]
    web, profiles, spare, worker = config.watchers
    assert web.socket == Socket("web", "127.0.0.1", 6000, "APP_WEB_PORT")
    assert web.url == "http://127.0.0.1:6000"
    # Socket names are case-insensitive (circusd lowers them); one bound to every address
    # is reached on loopback.
    assert profiles.socket.name == "profiles" and profiles.url == "http://127.0.0.1:6010"
    assert spare.socket.name == "spare" and spare.url is None  # same name; a unix socket
    assert worker.socket is None and worker.url is None
    assert config.watcher("worker") is worker and config.watcher("nope") is None


def test_whether_circusd_logs_itself(tmp_path):
    """Without [circus] logoutput, `turnout up` gives circusd a log file: a daemon writing to
    the stdout of a command that has exited dies of a broken pipe."""
    assert circus(tmp_path).logs_itself is False
    with_log = CIRCUS_INI.replace("check_delay = 1", "check_delay = 1\nlogoutput = /tmp/c.log")
    assert circus(tmp_path, with_log).logs_itself is True


def test_the_endpoint_and_where_its_port_comes_from(tmp_path):
    config = circus(tmp_path)
    assert config.endpoint == "tcp://127.0.0.1:6555"
    assert config.endpoint_variable == "APP_CIRCUS_PORT"
    bare = circus(tmp_path, "[watcher:one]\ncmd = sleep 1\n")
    assert bare.endpoint == "tcp://127.0.0.1:5555"  # circusd's default


def test_variables_are_resolved_case_insensitively_and_circus_ini_env_wins(tmp_path):
    text = CIRCUS_INI + "\n[env]\nAPP_WEB_PORT = 7000\n"
    assert circus(tmp_path, text).watchers[0].url == "http://127.0.0.1:7000"


@pytest.mark.parametrize("missing, where", [("APP_WEB_PORT", "[socket:web] port"),
                                            ("APP_PYTHON", "[watcher:web] cmd"),
                                            ("APP_CIRCUS_PORT", "[circus] endpoint")])
def test_a_variable_nobody_set_is_named_with_where_it_is_used(tmp_path, missing, where):
    env = {name: value for name, value in ENV.items() if name != missing}
    path = tmp_path / "circus.ini"
    path.write_text(CIRCUS_INI)
    with pytest.raises(ConfigError) as refused:
        read_circus(path, env)
    assert str(refused.value) == (f"{path}: {where} uses $(circus.env.{missing}), which is not "
                                  "set: export it, or give it a default in turnout.toml [env]")


def test_env_sections_are_left_to_circusd(tmp_path):
    """`[env:web]` expands `$APP_RUN_DIR` in circusd, from its own environment."""
    assert circus(tmp_path).watcher("web") is not None


@pytest.mark.parametrize("env, says", [
    ({"APP_WEB_PORT": "http"}, "APP_WEB_PORT must be a whole number from 1 to 65535, got 'http' "
                               "(the port of [socket:web] in"),
    ({"APP_WEB_PORT": "70000"}, "got '70000'"),
    ({"APP_CIRCUS_PORT": "0"}, "APP_CIRCUS_PORT must be a whole number from 1 to 65535, got '0'"
                               " (the port of [circus] endpoint"),
    ({"APP_COPIES": "two"}, "[watcher:profiles] numprocesses must be a whole number, got 'two' "
                            "(from APP_COPIES)"),
])
def test_bad_numbers_are_refused_naming_the_variable(tmp_path, env, says):
    assert says in refusal(tmp_path, **env)


def test_a_socket_nobody_declared(tmp_path):
    text = "[watcher:web]\ncmd = gunicorn -b fd://$(circus.sockets.www) app:app\n"
    assert "[watcher:web] uses $(circus.sockets.www), but there is no [socket:www]" in \
        refusal(tmp_path, text)


def test_a_file_that_is_no_ini_file(tmp_path):
    assert "is not a valid circus.ini" in refusal(tmp_path, "cmd = no section\n")


def test_included_files_count(tmp_path):
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.ini").write_text("[watcher:extra]\ncmd = sleep 1\n")
    config = circus(tmp_path, "[circus]\ninclude_dir = more\n\n[watcher:one]\ncmd = sleep 1\n")
    assert [w.name for w in config.watchers] == ["one", "extra"]


# --- Runnerly's circus.ini with its turnout.toml ---------------------------------------------

def runnerly(environ: dict[str, str]) -> tuple[dict[str, str], CircusConfig]:
    project = Project(read(ROOT / "turnout.toml"))
    env = stack.environment(project, environ)
    return env, read_circus(project.circus_path(), env)


def test_runnerly_gets_every_default_it_had():
    env, config = runnerly({})
    assert env["TURNOUT_HOME"] == str(ROOT)
    assert env["TURNOUT_RUN_DIR"] == str(ROOT / "run")
    assert env["TURNOUT_PYTHON"] == sys.executable
    assert env["TURNOUT_STRAVA_URL"] == "http://127.0.0.1:5090"
    assert env["TURNOUT_TOKEN_URL"] == "http://127.0.0.1:5020/oauth/token"
    assert config.endpoint == f"ipc://{ROOT / 'run' / 'circus' / 'control.sock'}"
    assert [(w.name, w.url) for w in config.watchers] == [
        ("monolith", "http://127.0.0.1:5000"), ("dataservice", "http://127.0.0.1:5010"),
        ("tokendealer", "http://127.0.0.1:5020"), ("stravaimport", "http://127.0.0.1:5030"),
        ("reports", "http://127.0.0.1:5040"), ("stravadev", "http://127.0.0.1:5090")]


def test_ports_set_in_the_environment_move_every_url_with_them():
    from monolith.wiring import REGISTRY

    env, config = runnerly({"TURNOUT_DATASERVICE_PORT": "6010", "TURNOUT_MONOLITH_PORT": "6000",
                            "TURNOUT_REPORTS_URL": "http://reports.internal:80"})
    stack.with_service_urls(env, REGISTRY, config)
    assert env["TURNOUT_DATASERVICE_URL"] == "http://127.0.0.1:6010"  # from its socket
    assert env["TURNOUT_STRAVAIMPORT_URL"] == "http://127.0.0.1:5030"
    assert env["TURNOUT_REPORTS_URL"] == "http://reports.internal:80"  # set: kept
    assert env["TURNOUT_REPORTS_DATA_URL"] == "http://127.0.0.1:6000"  # [env] with ${...}


def test_a_count_that_is_not_a_number_is_refused_before_anything_starts():
    with pytest.raises(ConfigError, match="TURNOUT_MONOLITH_WORKERS must be a whole number of "
                                          "at least 1, got 'many'"):
        runnerly({"TURNOUT_MONOLITH_WORKERS": "many"})


# --- [env] defaults ------------------------------------------------------------------------

def test_defaults_fill_in_what_is_unset_and_may_use_each_other():
    env = with_defaults({"PORT": "7000", "OTHER": "x"},
                        {"URL": "http://${HOST}:${PORT}", "HOST": "127.0.0.1", "PORT": "5000"})
    assert env == {"PORT": "7000", "OTHER": "x", "URL": "http://127.0.0.1:7000",
                   "HOST": "127.0.0.1"}


def test_numbers_stay_numbers():
    check_numbers({"A": "3"}, frozenset({"A"}))
    for bad in ("0", "-1", "3.5", ""):
        with pytest.raises(ConfigError, match="A must be a whole number of at least 1"):
            check_numbers({"A": bad}, frozenset({"A"}))


# --- up refuses a taken port before anything starts ---------------------------------------

def test_a_port_in_use_is_refused_naming_its_variable(tmp_path):
    with closing(socket.socket()) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = circus(tmp_path, APP_WEB_PORT=str(port))
        with pytest.raises(stack.StackError) as refused:
            stack._require_free(config.sockets["web"], config)
    assert str(refused.value) == (f"port {port} of [socket:web] is in use on 127.0.0.1: stop "
                                  "what holds it, or set APP_WEB_PORT")


def test_a_free_port_passes(tmp_path):
    config = circus(tmp_path, APP_WEB_PORT=str(free_port()))
    stack._require_free(config.sockets["web"], config)
    stack._require_free(config.sockets["spare"], config)  # a unix socket: nothing to check


def test_project_files_round_trip(tmp_path):
    path = tmp_path / "turnout.toml"
    path.write_text('registry = "a.b:C"\n[env]\nN = 2\nS = "x"\n[hooks]\nbefore_up = "a:b"\n')
    assert read(path) == ProjectFile(path=path, registry="a.b:C", settings=None,
                                     circus="circus.ini", database=None,
                                     env={"N": "2", "S": "x"}, numeric=frozenset({"N"}),
                                     hooks={"before_up": "a:b"})
