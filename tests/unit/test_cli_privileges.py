"""`turnout up` as root: the user its processes run as, the run directory's owners and modes,
circusd's control endpoint, and the refusals that come in one line instead of a traceback
(shims/cli/app_user.py, shims/cli/run_dir.py, shims/gunicorn_conf.py)."""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

from shims.cli import app_user, run_dir
from shims.cli.app_user import AppUser
from shims.cli.circus import read_circus
from shims.settings import ConfigError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: changes owners")
NOBODY = pwd.getpwnam("nobody")
OTHER = AppUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- who the processes run as ----------------------------------------------------------------

def test_not_root_nothing_changes():
    assert app_user.resolve({}, euid=1000) is None
    assert app_user.process_ids(None) == {"TURNOUT_PROCESS_UID": "", "TURNOUT_PROCESS_GID": ""}


def test_as_root_the_processes_get_the_named_user():
    user = app_user.resolve({"TURNOUT_APP_USER": "nobody"}, euid=0)
    assert user == OTHER
    assert app_user.process_ids(user) == {"TURNOUT_PROCESS_UID": str(NOBODY.pw_uid),
                                          "TURNOUT_PROCESS_GID": str(NOBODY.pw_gid)}


def test_a_missing_user_is_refused_with_how_to_make_it():
    with pytest.raises(ConfigError) as refused:
        app_user.resolve({"TURNOUT_APP_USER": "no-such-turnout-user"}, euid=0)
    message = str(refused.value)
    assert "'no-such-turnout-user' (TURNOUT_APP_USER), which does not exist" in message
    assert "useradd --system" in message and "scripts/bootstrap.sh" in message


def test_root_is_not_an_app_user():
    with pytest.raises(ConfigError, match="TURNOUT_APP_USER=root is root"):
        app_user.resolve({"TURNOUT_APP_USER": "root"}, euid=0)


@as_root
def test_a_checkout_the_app_user_cannot_read_is_refused(tmp_path):
    hidden = tmp_path / "checkout"
    hidden.mkdir(mode=0o700)
    with pytest.raises(ConfigError) as refused:
        app_user.check_can_run(OTHER, sys.executable, str(hidden), hidden / "run", os.environ)
    assert "the user nobody cannot" in str(refused.value)
    assert "chmod o+rX" in str(refused.value)


@as_root
def test_up_as_root_without_the_user_is_one_line_and_starts_nothing(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    env.update(TURNOUT_APP_USER="no-such-turnout-user", TURNOUT_RUN_DIR=str(tmp_path / "run"),
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "shims.cli", "up", "--wait", "5"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "does not exist" in done.stderr
    assert not (tmp_path / "run" / "circus").exists()


# --- the run directory -------------------------------------------------------------------------

def a_previous_versions_run_dir(base: Path) -> Path:
    """What an earlier `turnout up` left: everything root's and world-readable."""
    run = base / "run"
    (run / "logs").mkdir(parents=True)
    (run / "metrics" / "monolith").mkdir(parents=True)
    for path in (run / "monolith.db", run / "flags.db", run / "logs" / "monolith.log",
                 run / "metrics" / "monolith" / "counter.db"):
        path.write_text("x")
        path.chmod(0o644)
    for directory in (run, run / "logs", run / "metrics", run / "metrics" / "monolith"):
        directory.chmod(0o755)
    return run


def test_prepare_makes_everything_private_for_the_operator(tmp_path):
    run = a_previous_versions_run_dir(tmp_path)
    run_dir.prepare(run, None)
    assert mode(run) == 0o700
    assert mode(run / "circus") == mode(run / "logs") == 0o700
    for path in run.rglob("*"):
        assert mode(path) & 0o077 == 0, path


@as_root
def test_prepare_as_root_gives_the_data_to_the_app_user_and_keeps_its_own(tmp_path):
    run = a_previous_versions_run_dir(tmp_path)
    run_dir.prepare(run, OTHER)
    found = run.stat()
    assert (found.st_uid, found.st_gid, mode(run)) == (0, OTHER.gid, 0o1770)
    for name in ("circus", "logs"):
        assert (run / name).stat().st_uid == 0 and mode(run / name) == 0o700
    assert (run / "logs" / "monolith.log").stat().st_uid == 0
    for path in (run / "monolith.db", run / "flags.db",
                 run / "metrics" / "monolith" / "counter.db"):
        assert (path.stat().st_uid, mode(path)) == (OTHER.uid, 0o600), path
    assert mode(run / "metrics") == 0o700


@as_root
def test_a_planted_symlink_is_never_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("root's")
    target.chmod(0o644)
    run = a_previous_versions_run_dir(tmp_path)
    (run / "innocent.db").symlink_to(target)
    run_dir.prepare(run, OTHER)
    assert (target.stat().st_uid, mode(target)) == (0, 0o644)


@as_root
def test_a_control_directory_someone_else_made_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "circus").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="circus must be a directory owned by uid 0"):
        run_dir.prepare(run, OTHER)


def test_as_root_a_watcher_without_uid_is_refused(tmp_path):
    from shims.cli import stack

    ini = tmp_path / "circus.ini"
    ini.write_text("[watcher:confined]\ncmd = sleep 1\nuid = $(circus.env.U)\n\n"
                   "[watcher:legacy]\ncmd = sleep 1\n")
    with pytest.raises(stack.StackError, match=r"\[watcher:legacy\] in circus.ini sets no uid"):
        stack.require_confined(read_circus(ini, {"U": "65534"}))
    ini.write_text("[watcher:confined]\ncmd = sleep 1\nuid = $(circus.env.U)\n")
    stack.require_confined(read_circus(ini, {"U": "65534"}))


def test_runnerly_and_the_bookshop_confine_every_watcher():
    from shims.cli import stack

    for ini in (ROOT / "circus.ini", ROOT / "examples" / "bookshop" / "circus.ini"):
        text = ini.read_text()
        variables = set(re.findall(r"circus\.env\.(\w+)", text))
        config = read_circus(ini, {name: "1" for name in variables})
        stack.require_confined(config)


# --- circusd's endpoint ------------------------------------------------------------------------

def test_an_ipc_endpoint_too_long_for_a_unix_socket_is_refused(tmp_path):
    ini = tmp_path / "circus.ini"
    ini.write_text(f"[circus]\nendpoint = ipc://{'/x' * 60}/control.sock\n")
    with pytest.raises(ConfigError, match="longer than a unix socket path may be"):
        read_circus(ini, {})
    ini.write_text("[circus]\nendpoint = ipc:///run/turnout/circus/control.sock\n")
    assert read_circus(ini, {}).endpoint == "ipc:///run/turnout/circus/control.sock"


def test_a_tcp_control_endpoint_is_refused_before_anything_starts(tmp_path):
    from shims.cli import stack

    for circus_section in ("[circus]\nendpoint = tcp://127.0.0.1:5555\n", ""):  # "": the default
        ini = tmp_path / "circus.ini"
        ini.write_text(circus_section + "[watcher:app]\ncmd = sleep 1\n")
        with pytest.raises(stack.StackError, match="every local user can reach"):
            stack.start(read_circus(ini, {}), {"TURNOUT_RUN_DIR": str(tmp_path / "run")})
        assert not (tmp_path / "run").exists()
    for ini in (ROOT / "circus.ini", ROOT / "examples" / "bookshop" / "circus.ini"):
        variables = set(re.findall(r"circus\.env\.(\w+)", ini.read_text()))
        stack.require_private_endpoint(read_circus(ini, {name: "1" for name in variables}))


# --- each gunicorn master keeps only its own listening socket ---------------------------------

# Run in a process of its own: the hook closes every listening socket but the ones it keeps.
MASTER = """
import os, socket, sys
from shims.gunicorn_conf import close_foreign_sockets

def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock

def is_open(descriptor):
    try:
        return os.fstat(descriptor) is not None
    except OSError:
        return False

own, foreign, client = listening(), listening(), socket.socket()
binds = [f"fd://{own.fileno()}"] if sys.argv[1] == "fd" else ["127.0.0.1:8000"]
close_foreign_sockets(binds)
print(is_open(own.fileno()), is_open(foreign.fileno()), is_open(client.fileno()))
"""


def master_keeps(bind: str) -> str:
    done = subprocess.run([sys.executable, "-c", MASTER, bind], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True, env={**os.environ,
                                                                  "PYTHONPATH": str(ROOT)})
    return done.stdout.strip()


def test_a_master_closes_the_listening_sockets_of_other_watchers():
    # its own socket, another watcher's listening socket, a socket that does not listen
    assert master_keeps("fd") == "True False True"


def test_a_master_binding_its_own_address_closes_nothing():
    assert master_keeps("address") == "True True True"
