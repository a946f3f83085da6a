"""The SQLite file under a flag store: watched with one `stat` per look, checked when it moved.

SQLite trusts its file, and the file is what operators copy, move and restore:
- a connection keeps its page cache for as long as the WAL index says nothing changed, so
  garbage copied into the same file goes unnoticed by every connection already open;
- a connection opened before `mv backup flags.db` keeps reading the old, unlinked file;
- a connection opened on an emptied file makes it a new, empty database.

So before the store uses its pooled connections, `FileWatch.verify()` stats the file (a few
microseconds, at most once per flag refresh). When the file's identity (device, inode) or
its marks (size, mtime, ctime: a `cp` changes them, and nobody can set ctime back) moved
since the last look, it drops the pool, so that every connection opens the file as it is
now, and checks the file on a connection of its own that is read-only (it can never create
or rewrite the file) and bounded in time: the state row must be readable and SQLite's
`PRAGMA quick_check` must pass. Until a check passes, every look checks again, so a file
that is restored is trusted at the next look.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, Engine, make_url

from shims.flags import problems
from shims.flags.problems import FlagStoreError

CHECK_SECONDS = 0.5  # longest a check may hold up the worker (sqlite3 blocks the gevent hub)
COMPANIONS = ("-wal", "-shm")  # SQLite's own files beside the database
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Signature:
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


GONE = Signature(device=-1, inode=-1, size=-1, mtime_ns=-1, ctime_ns=-1)  # seen missing


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL; None for in-memory SQLite and other databases."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_directory(path: Path) -> None:
    """The CLI's guard: a mistyped TURNOUT_RUN_DIR must not create a second, empty store
    that a `turnout flags kill` would then switch while every worker reads the real one."""
    if not path.parent.is_dir():
        raise FlagStoreError(
            f"there is no flag store at {path}: the directory {path.parent} does not exist. "
            "Is TURNOUT_RUN_DIR (or TURNOUT_FLAGS_URL) the one the processes use? "
            "`turnout up` creates it.", reason=problems.NO_DIRECTORY)


class FileWatch:
    def __init__(self, path: Path, *, check_seconds: float = CHECK_SECONDS):
        self.path = path
        self._check_seconds = check_seconds
        self._seen: Signature | None = None  # at the last look
        self._trusted: Signature | None = None  # at the last check that passed
        self._good_size = 0  # the size at the last check that passed: a shorter file was cut

    def exists(self) -> bool:
        return self.path.exists()

    def verify(self, engine: Engine) -> None:
        """Return if the file can be trusted, else raise FlagStoreError saying why."""
        signature = self._stat()
        if signature == self._trusted:
            return
        if self._seen is not None and signature != self._seen:
            engine.dispose()  # pooled connections may hold a stale cache or an unlinked file
        self._seen = signature
        problem = check_file(self.path, self._check_seconds,
                             shrunk=signature.size < self._good_size)
        if problem is not None:
            self._trusted = None
            raise problem
        self._trusted, self._good_size = signature, signature.size

    def _stat(self) -> Signature:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._trusted = GONE, None  # a file that comes back is a new file
            raise problems.damaged(str(self.path), problems.MISSING,
                                   "does not exist: deleted or moved away?") from None
        except OSError as exc:
            raise FlagStoreError(f"the flag store {self.path} cannot be looked at: "
                                 f"{exc.strerror}", reason=problems.PERMISSION) from None
        return Signature(found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns,
                         found.st_ctime_ns)

    def set_aside(self) -> Path | None:
        """Keep the unusable file under a new name, for whoever wants to look at it, and move
        SQLite's -wal and -shm beside it: they belong to it, and a stale -wal left in place
        would be replayed onto the new store. The original name stays in place (a hard link)
        until `replace_with` renames the new store over it, so there is never a moment
        without a file there. Returns the new name; None if there was no file to keep."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        aside: Path | None = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        try:
            os.link(self.path, aside)
        except FileNotFoundError:
            aside = None
        except OSError:  # a file system without hard links: a copy keeps it as well
            shutil.copyfile(self.path, aside)
        keep = aside or self.path.with_name(f"{self.path.name}.stale-{stamp}")
        for suffix in COMPANIONS:
            companion = Path(f"{self.path}{suffix}")
            if companion.exists():
                os.replace(companion, f"{keep}{suffix}")
        return aside

    def replace_with(self, new_file: Path) -> None:
        os.replace(new_file, self.path)
        self._trusted = None


def check_file(path: Path, seconds: float, *, shrunk: bool = False,
               immutable: bool = False) -> FlagStoreError | None:
    """None if SQLite can read the store's state row and finds no damaged page, else what
    is wrong. `immutable`: a file nobody writes (a backup), read without locks or SQLite's
    files beside it."""
    where = str(path)
    options = "mode=ro&immutable=1" if immutable else "mode=ro"
    try:
        size = path.stat().st_size
        connection = sqlite3.connect(f"file:{quote(str(path))}?{options}", uri=True,
                                     timeout=seconds, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        return problems.from_database_error(exc, where)
    try:
        problem = _read_state(connection, where) or _quick_check(connection, where, seconds)
    except sqlite3.Error as exc:
        problem = problems.from_database_error(exc, where)
    finally:
        connection.close()
    return None if problem is None else _explain(problem, where, size, shrunk)


def _read_state(connection: sqlite3.Connection, where: str) -> FlagStoreError | None:
    found = connection.execute("SELECT version FROM turnout_state WHERE id = 1").fetchone()
    return problems.damaged(where, problems.NO_SCHEMA, "has no state row") if found is None \
        else None


def _quick_check(connection: sqlite3.Connection, where: str,
                 seconds: float) -> FlagStoreError | None:
    """SQLite's own check of every page, given up after `seconds`: a store too large to
    check that fast is trusted on its readable state row rather than hold up the worker's
    greenlets any longer."""
    deadline = time.monotonic() + seconds
    connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        verdict = [str(row[0]) for row in connection.execute("PRAGMA quick_check(3)")]
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            return None
        raise
    if verdict == ["ok"]:
        return None
    found = "; ".join(line.replace("\n", " ") for line in verdict)
    return problems.damaged(where, problems.INTEGRITY,
                            f"failed SQLite's integrity check ({found})")


def _explain(problem: FlagStoreError, where: str, size: int, shrunk: bool) -> FlagStoreError:
    """A damaged file that is also shorter than before, or than its own header says, was
    truncated: saying so tells what happened."""
    if problem.reason not in problems.DAMAGED or not (shrunk or size == 0 or
                                                      size < _size_in_header(Path(where))):
        return problem
    what = "is empty (0 bytes)" if size == 0 else f"was truncated to {size} bytes"
    return problems.damaged(where, problems.TRUNCATED,
                            f"{what}; SQLite says it {problem.detail.rstrip('?.')}")


def _size_in_header(path: Path) -> int:
    """The size SQLite's header gives the file (page size x pages at the last checkpoint);
    0 if there is no SQLite header to read."""
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError:
        return 0
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return 0
    page_size = int.from_bytes(header[16:18], "big")
    return (65536 if page_size == 1 else page_size) * int.from_bytes(header[28:32], "big")
