"""The run directory: who owns what in it, with modes no other local user can read.

    $TURNOUT_RUN_DIR/      the operator's (who runs `turnout up`), 0700; as root, group of the
                           app user and 1770: the app user creates its files there (SQLite
                           needs that for its WAL files), but the sticky bit keeps it from
                           renaming or deleting what the operator owns
      circus/              the operator's, 0700: circusd's control, pub/sub and stats
                           sockets and its pid file; no one else may even connect
      logs/                the operator's, 0700: circusd writes each process's output here
      everything else      the app user's: databases, flags, keys, secrets, metrics

Every process is started with umask 077 (circus.ini's [circus] umask), so what they create is
0600/0700 from the start; `tighten` brings files of an earlier version (0644) and files root
made (demo data) into line at each `turnout up`. It walks with directory descriptors and never
follows a symlink: the app user could have planted one anywhere it may write.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import suppress
from pathlib import Path

from shims.cli.app_user import AppUser
from shims.settings import ConfigError

CONTROL, LOGS = "circus", "logs"
OPERATOR_DIRS = (CONTROL, LOGS)
PRIVATE = 0o077  # the group and other bits no file under the run directory keeps
SHARED_WITH_APP_USER = 0o1770  # operator rwx, app group rwx, sticky


def prepare(run_dir: Path, user: AppUser | None) -> None:
    """The layout above, created or repaired."""
    operator = os.geteuid()
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is None:
        os.chmod(run_dir, stat.S_IMODE(run_dir.stat().st_mode) & ~PRIVATE)
    else:
        os.chown(run_dir, operator, user.gid)
        os.chmod(run_dir, SHARED_WITH_APP_USER)
    for name in OPERATOR_DIRS:
        operator_dir(run_dir / name, operator)
    tighten(run_dir, user)


def operator_dir(path: Path, operator: int) -> None:
    """A directory only `operator` may enter, refused if someone else made it."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        found = path.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != operator:
            raise ConfigError(f"{path} must be a directory owned by uid {operator}, who runs "
                              "turnout; it is not: remove it and run turnout up again") from None
    os.chmod(path, 0o700)


def tighten(run_dir: Path, user: AppUser | None) -> None:
    """Strip group and other bits everywhere below the run directory; as root, give each
    entry outside the operator's directories to the app user."""
    for top, dirs, files, top_fd in os.fwalk(run_dir, follow_symlinks=False):
        operators = Path(top) != run_dir and Path(top).relative_to(run_dir).parts[0] \
            in OPERATOR_DIRS
        for name in dirs + files:
            mine = operators or (Path(top) == run_dir and name in OPERATOR_DIRS)
            _tighten_entry(name, top_fd, None if mine else user)


def _tighten_entry(name: str, dir_fd: int, owner: AppUser | None) -> None:
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOENT, errno.EACCES):
            return  # a symlink (left alone), a socket, gone meanwhile, not ours to open
        raise
    try:
        found = os.fstat(descriptor)
        if not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
            return
        if owner is not None and (found.st_uid, found.st_gid) != (owner.uid, owner.gid):
            os.fchown(descriptor, owner.uid, owner.gid)
        if stat.S_IMODE(found.st_mode) & PRIVATE:
            # another user's file, when not root: not ours to change
            with suppress(PermissionError):
                os.fchmod(descriptor, stat.S_IMODE(found.st_mode) & ~PRIVATE)
    finally:
        os.close(descriptor)
