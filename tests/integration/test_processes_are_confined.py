"""Issue 10, "root through circusd" and "world-readable data", on a real stack started as
root: another local user cannot reach circusd, cannot read a byte under the run directory,
and no app process runs as root or holds another app's listening socket.

A second local user is `nobody`; the app user (`turnout`) is tried too: an app that is
broken into must not be able to ask circusd for a root process either."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys

import psutil
import pytest
import requests

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the stack is "
                                 "started as root, and probed as other users")]

WATCHER_PORTS = {"monolith": "TURNOUT_MONOLITH_PORT", "dataservice": "TURNOUT_DATASERVICE_PORT",
                 "tokendealer": "TURNOUT_TOKENDEALER_PORT",
                 "stravaimport": "TURNOUT_STRAVAIMPORT_PORT",
                 "reports": "TURNOUT_REPORTS_PORT", "stravadev": "TURNOUT_STRAVA_PORT"}
APP_USER = os.environ.get("TURNOUT_APP_USER", "turnout")

# A raw ZMQ client, as the attacker used: one request to circusd's control endpoint,
# "answered" or "no answer" within two seconds.
ASK_CIRCUSD = """
import json, sys, zmq
context = zmq.Context()
dealer = context.socket(zmq.DEALER)
dealer.setsockopt(zmq.LINGER, 0)
try:
    dealer.connect(sys.argv[1])
    dealer.send(json.dumps({"id": "probe", "command": "list", "properties": {}}).encode())
    print("answered" if dealer.poll(2000) else "no answer")
except zmq.ZMQError as exc:
    print(f"no answer ({exc})")
"""

# Opens each path it is given; prints those it could read.
READ_ANY = """
import json, sys
readable = []
for path in json.load(sys.stdin):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        readable.append(path)
    except OSError:
        pass
print(json.dumps(readable))
"""


def as_user(user: str, code: str, *args: str, stdin: str = "") -> str:
    entry = pwd.getpwnam(user)
    done = subprocess.run([sys.executable, "-c", code, *args], input=stdin, cwd="/",
                          user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, f"as {user}: {done.stderr}"
    return done.stdout.strip()


@pytest.mark.parametrize("user", ["nobody", APP_USER])
def test_no_other_local_user_reaches_circusds_endpoints(stack, user):
    # the same client, run by the operator, is answered: the probe itself works
    assert as_user("root", ASK_CIRCUSD, stack.control_endpoint) == "answered"
    for name in ("control", "pubsub", "stats"):
        endpoint = f"ipc://{stack.run_dir / 'circus' / f'{name}.sock'}"
        assert as_user(user, ASK_CIRCUSD, endpoint).startswith("no answer"), endpoint
    refused = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "circusctl"), "--endpoint",
         stack.control_endpoint, "--timeout", "2", "list"],
        user=user, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0, refused.stdout


def test_nobody_reads_nothing_under_the_run_directory(stack):
    everything = [os.path.join(top, name) for top, _, files in os.walk(stack.run_dir)
                  for name in files]
    assert any(path.endswith("monolith.db") for path in everything)
    assert any("/logs/" in path for path in everything)
    assert json.loads(as_user("nobody", READ_ANY, stdin=json.dumps(everything))) == []
    for top, dirs, files in os.walk(stack.run_dir):
        for name in dirs + files:
            found = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode):
                assert stat.S_IMODE(found.st_mode) & 0o077 == 0, os.path.join(top, name)


def app_processes(stack) -> list[psutil.Process]:
    """Every descendant of circusd but circus's own statistics process."""
    circusd = psutil.Process(stack.circusd_pid())
    return [child for child in circusd.children(recursive=True)
            if "circus" not in " ".join(child.cmdline())]


def test_no_app_process_runs_as_root(stack):
    processes = app_processes(stack)
    assert len(processes) >= 2 * len(WATCHER_PORTS)  # masters and their workers
    app_uid = pwd.getpwnam(APP_USER).pw_uid
    assert {(p.uids().real, p.uids().effective) for p in processes} == {(app_uid, app_uid)}


@pytest.mark.parametrize("watcher", sorted(WATCHER_PORTS))
def test_each_app_process_holds_only_its_own_listening_socket(stack, watcher):
    own = int(stack.env[WATCHER_PORTS[watcher]])
    pids = stack.watcher_pids(watcher)
    assert pids
    for pid in pids:
        listening = {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {own}, (watcher, pid)


def test_the_confined_stack_still_serves(stack):
    assert requests.get(f"{stack.monolith}/healthz", timeout=10).status_code == 200
    signed_in = requests.post(f"{stack.monolith}/api/tokens", timeout=30,
                              auth=("demo@runnerly.dev", "runnerly-demo"))
    assert signed_in.status_code in (200, 201), signed_in.text
