"""Getting a flag store back: the kill switch whatever state the store is in, `repair`, and
`restore` from a backup. The CLI and the admin API call these; each returns what it did, in
a sentence for the operator.

- `kill` always ends with the kill switch on. A SQLite file that is no store any more
  (garbage, truncated, deleted: `problems.DAMAGED`) is set aside, under a name that says
  when, and a new store takes its place with the kill switch on and every feature local: the
  emergency brake never waits for someone to find a backup, and nothing is thrown away.
- `repair` does the same for a damaged file; for a file restored by hand from an older copy
  (`store.restored()`), it makes that copy's flags current with a new version, leaving the
  kill switch as it was last set.
- `restore BACKUP` is the safe way back to a backup: its flags are written through SQLite, as
  one audited change with a new version, instead of a file swapped under processes that
  have it open. The kill switch stays as it was last set.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from shims.flags import last_write, problems
from shims.flags.model import Flag, FlagError, validate_flag
from shims.flags.problems import FlagStoreError
from shims.flags.sqlite_file import check_file
from shims.flags.store import (
    KILL_SWITCH,
    SqlFlagStore,
    audit_table,
    metadata,
    state_table,
    utcnow,
    version_time,
)
from shims.sql import create_tables, make_engine

BACKUP_CHECK_SECONDS = 10.0  # a backup is read once, by the CLI: it may take its time


def kill(store: SqlFlagStore, *, actor: str) -> str | None:
    """The kill switch on; returns a note when more than the switch happened."""
    try:
        store.open()
        restored = store.restored()
        store.kill(actor=actor)
    except FlagStoreError as problem:
        return _killed_afresh(store, problem, actor)
    if restored is not None:
        return (f"note: {store.where} had been restored from an older copy, "
                f"{version_time(restored.version)}; `turnout flags unkill` will bring back "
                "that copy's flags: check `turnout flags list` first")
    return None


def repair(store: SqlFlagStore, *, actor: str) -> str:
    try:
        store.open()
        store.verify()
    except FlagStoreError as problem:
        return _killed_afresh(store, problem, actor)
    restored = store.restored()
    if restored is None:
        return (f"nothing to repair: {store.where} is readable, at "
                f"{version_time(store.version())}, and no newer change was written to it")
    killed = store.adopt(restored, actor=actor)
    return (f"adopted the restored copy, {version_time(restored.version)}, as "
            f"{version_time(store.version())}: every worker serves its flags within a "
            f"second; the kill switch is {'ON' if killed else 'off'}, as last set")


def restore(store: SqlFlagStore, backup: Path, *, actor: str) -> str:
    flags = read_backup(backup, store)
    killed = None
    try:
        store.open()
        store.verify()
        restored = store.restored()
        if restored is not None:
            killed = restored.last.killed  # not the hand-restored copy's kill switch
    except FlagStoreError as problem:
        if not _can_start_afresh(store, problem):
            raise
        last = store.last_write()
        start_afresh(store, problem, actor=actor, killed=last.killed if last else True)
    changed = store.replace_flags(flags, actor=actor, source=str(backup), killed=killed)
    state = store.snapshot()
    return (f"restored the flags of {backup} as {version_time(state.version)}: "
            f"{', '.join(changed) or 'no feature'} changed; the kill switch is "
            f"{'ON' if state.killed else 'off'}, as last set")


def read_backup(backup: Path, store: SqlFlagStore) -> dict[str, Flag]:
    """The flags of a copy of a SQLite flag store, each checked like a new value."""
    if not backup.is_file():
        raise FlagStoreError(f"the backup {backup} does not exist (or is not a file); nothing "
                             "was restored", reason=problems.MISSING)
    problem = check_file(backup, BACKUP_CHECK_SECONDS, immutable=True)
    if problem is not None:
        raise FlagStoreError(f"the backup {backup} cannot be used: it {problem.detail}; "
                             "nothing was restored", reason=problem.reason)
    connection = sqlite3.connect(f"file:{quote(str(backup))}?mode=ro&immutable=1", uri=True)
    try:
        rows = connection.execute("SELECT feature, mode, percent FROM turnout_flags").fetchall()
    except sqlite3.Error as exc:
        raise FlagStoreError(f"the backup {backup} cannot be read ({exc}); nothing was "
                             "restored", reason=problems.ERROR) from None
    finally:
        connection.close()
    flags, refused = {}, []
    for feature, mode, percent in rows:
        try:
            flags[feature] = validate_flag(store.features, feature, mode,
                                           percent if mode == "canary" else None)
        except FlagError as exc:
            refused.append(f"{feature}: {exc.message}")
    if refused:
        raise FlagStoreError(f"the backup {backup} has flags that break the rules ("
                             f"{'; '.join(refused)}); nothing was restored",
                             reason=problems.INTEGRITY)
    return flags


def start_afresh(store: SqlFlagStore, problem: FlagStoreError, *, actor: str,
                 killed: bool) -> Path | None:
    """A new, whole store in place of a damaged file; returns where the old file was kept.

    The new store is built beside the file and renamed over it, so every worker finds a
    whole store (or the damaged one) at every moment; its version is newer than any the
    damaged store ever had, so workers take it up at their next look."""
    path = store.file.path  # type: ignore[union-attr]  # SQLite only (_can_start_afresh)
    fresh = path.with_name(f".{path.name}.new-{os.getpid()}")
    for leftover in (fresh, *(Path(f"{fresh}{suffix}") for suffix in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    version = store.next_floor()
    engine = make_engine(f"sqlite:///{fresh}", pool_size=1, max_overflow=0)
    try:
        for tables in (metadata, *store.companions):
            create_tables(tables, engine)
        with engine.begin() as connection:
            connection.execute(insert(state_table).values(id=1, version=version, killed=killed))
            connection.execute(insert(audit_table).values(
                at=utcnow(), actor=actor, feature=KILL_SWITCH,
                old=f"unusable store ({problem.reason})",
                new=f"new store{', killed' if killed else ''}"))
    except SQLAlchemyError as exc:
        raise problems.from_database_error(exc, str(fresh)) from exc
    finally:
        engine.dispose()  # the last connection folds the WAL into the file and removes it
    try:
        aside = store.file.set_aside()  # type: ignore[union-attr]
        store.file.replace_with(fresh)  # type: ignore[union-attr]
    except OSError as exc:
        raise FlagStoreError(f"the flag store {path} could not be set aside for a new one "
                             f"({exc.strerror}: {exc.filename}); check that "
                             f"{path.parent} is writable", reason=problems.PERMISSION) from exc
    store.engine.dispose()
    last_write.write(path, version, killed, actor)
    return aside


def _can_start_afresh(store: SqlFlagStore, problem: FlagStoreError) -> bool:
    return store.file is not None and problem.reason in problems.DAMAGED


def _killed_afresh(store: SqlFlagStore, problem: FlagStoreError, actor: str) -> str:
    """A new store with the kill switch on in place of a damaged file, said in a sentence;
    any other problem (a lock, a database that does not answer) is raised as it is."""
    if not _can_start_afresh(store, problem):
        raise problem
    aside = start_afresh(store, problem, actor=actor, killed=True)
    kept = f"kept it as {aside}" if aside is not None else "there was no file to keep"
    return (f"{store.where} {problem.detail}: {kept}, and started a new store with the kill "
            "switch ON and every feature local. Restore your flags with `turnout flags "
            "restore BACKUP` (or `turnout flags set`), then `turnout flags unkill`.")
