"""Who the app's processes run as when `turnout up` runs as root.

circusd itself must run as the operator (it binds the sockets and owns the control
endpoint), but nothing it starts should: a bug in the app would otherwise be root. So a
root `turnout up` hands every watcher an unprivileged user, `TURNOUT_APP_USER` (default
`turnout`, which scripts/bootstrap.sh creates), through circus.ini's `uid`/`gid`
(`$(circus.env.TURNOUT_PROCESS_UID)`/`_GID`, empty when not root: circus then leaves the
process as it is). Run as anyone else, nothing changes: the processes run as that user.

That user must reach the code and the interpreter; a check run as that user says so in one
line before anything starts, instead of every process dying of a PermissionError.
"""

from __future__ import annotations

import os
import pwd
# Runs this venv's interpreter as the app user, fixed argv.
import subprocess  # nosec B404
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shims.settings import ConfigError

APP_USER_VARIABLE = "TURNOUT_APP_USER"
DEFAULT_APP_USER = "turnout"
UID_VARIABLE, GID_VARIABLE = "TURNOUT_PROCESS_UID", "TURNOUT_PROCESS_GID"
CREATE_HINT = "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin"
# Run as the app user: can it import the kit and gunicorn from the checkout, and enter the
# run directory's parent? One line on stdout says what it could not do.
_CAN_RUN = """
import os, sys
home, parent = sys.argv[1], sys.argv[2]
for path, what, needed in ((home, "read the checkout", os.R_OK | os.X_OK),
                           (parent, "enter the run directory's parent", os.X_OK)):
    if not os.access(path, needed):
        print(f"cannot {what} {path}"); sys.exit(1)
try:
    import shims, gunicorn, gevent  # noqa
except Exception as exc:
    print(f"cannot import the kit with {sys.executable} ({type(exc).__name__}: {exc})")
    sys.exit(1)
"""


@dataclass(frozen=True)
class AppUser:
    name: str
    uid: int
    gid: int


def resolve(env: Mapping[str, str], euid: int | None = None) -> AppUser | None:
    """The user the processes run as; None when they run as whoever runs the command."""
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    name = env.get(APP_USER_VARIABLE) or DEFAULT_APP_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"turnout runs as root, so every process runs as the user {name!r} "
            f"({APP_USER_VARIABLE}), which does not exist: create it (`{CREATE_HINT} {name}`; "
            f"scripts/bootstrap.sh does as root) or set {APP_USER_VARIABLE} to an "
            "unprivileged user") from None
    if entry.pw_uid == 0:
        raise ConfigError(f"{APP_USER_VARIABLE}={name} is root (uid 0): the processes must run "
                          "as an unprivileged user")
    return AppUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def process_ids(user: AppUser | None) -> dict[str, str]:
    """circus.ini's uid/gid: empty leaves each process as circusd is."""
    if user is None:
        return {UID_VARIABLE: "", GID_VARIABLE: ""}
    return {UID_VARIABLE: str(user.uid), GID_VARIABLE: str(user.gid)}


def run_as(user: AppUser, argv: list[str], env: Mapping[str, str], cwd: str,
           ) -> subprocess.CompletedProcess:
    """`argv` as the app user, with no supplementary groups and a private umask."""
    return subprocess.run(argv, env=dict(env), cwd=cwd, user=user.uid,  # nosec B603
                          group=user.gid, extra_groups=[], umask=0o077, capture_output=True,
                          text=True, timeout=120, check=False)


def check_can_run(user: AppUser, python: str, home: str, run_dir: Path,
                  env: Mapping[str, str]) -> None:
    """Refused in one line if the app user cannot run the app from this checkout."""
    fix = (f"make the path readable by {user.name} (chmod o+rX on each directory leading "
           f"to it), or set {APP_USER_VARIABLE} to a user who can")
    try:
        done = run_as(user, [python, "-c", _CAN_RUN, home, str(run_dir.parent)], env, cwd="/")
    except OSError as exc:
        real = os.path.realpath(python)
        named = python if real == python else f"{python} (= {real})"
        raise ConfigError(f"the user {user.name} cannot run {named} ({exc.strerror}): "
                          f"{fix}, or make the venv with an interpreter it can run "
                          "(PYTHON=/usr/bin/python3 scripts/start)") from None
    if done.returncode != 0:
        said = (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()[-1]
        raise ConfigError(f"the user {user.name} {said}: "
                          f"{fix}")


def call_hook_as(user: AppUser, hook: str, run_dir: Path, python: str, home: str,
                 env: Mapping[str, str]) -> None:
    """A `before_up` hook writes into the app user's run directory, so it runs as that user:
    root never writes where the app user could have put a symlink."""
    code = ("import sys; from pathlib import Path; from shims.cli.project import load_object; "
            "load_object('hooks.before_up', sys.argv[1])(Path(sys.argv[2]))")
    done = run_as(user, [python, "-c", code, hook, str(run_dir)],
                  {**env, "PYTHONPATH": _with_home(env.get("PYTHONPATH"), home)}, cwd=home)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise ConfigError(f"hooks.before_up {hook!r} failed as {user.name}: {said}")


def _with_home(pythonpath: str | None, home: str) -> str:
    return f"{home}{os.pathsep}{pythonpath}" if pythonpath else home
