"""A worker's view of a SQLite flag store whose file is damaged, replaced or restored (issue 8).

Each test has a "worker" (a SqlFlagStore behind a FlagCache that looks at every call,
refresh_interval=0, with its pooled connections warm, as a live worker's are) and an
"operator" (a second store on the same file, as `turnout flags` opens it), and does to the
file what an operator might: garbage copied over it, truncation, a backup copied or renamed
back, a version edited backwards. Asserted every time: the worker says what is wrong
(healthy, reason, problem, log, metrics), keeps serving its last good flags, never serves an
older version, and reads the store again at the first look after the file is whole again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from shims.flags import last_write, problems, recovery
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo, Flag
from shims.flags.problems import FlagStoreError, FlagStoreRestored
from shims.flags.store import SqlFlagStore
from shims.metrics import TurnoutMetrics
from shims.mismatches import metadata as mismatch_tables

FEATURES = {
    "runs": FeatureInfo("runs", has_remote=True, owns_data=True),
    "reports": FeatureInfo("reports", has_remote=True),
}


class Clock:
    """Wall-clock seconds that move 10 ms per reading: every change gets a later time."""

    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> float:
        self.ticks += 1
        return 1_800_000_000 + self.ticks / 100


class Worker:
    def __init__(self, path: Path, clock: Clock):
        self.store = SqlFlagStore.from_url(f"sqlite:///{path}", FEATURES, clock=clock,
                                           companions=(mismatch_tables,))
        self.store.open()
        self.metrics = TurnoutMetrics()
        self.cache = FlagCache(self.store, refresh_interval=0, metrics=self.metrics)

    def look(self):
        return self.cache.snapshot()

    @property
    def health(self):
        return self.cache.health

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def path(tmp_path):
    return tmp_path / "flags.db"


@pytest.fixture
def operator(path, clock):
    store = SqlFlagStore.from_url(f"sqlite:///{path}", FEATURES, clock=clock,
                                  companions=(mismatch_tables,))
    store.open()
    yield store
    store.engine.dispose()


@pytest.fixture
def worker(path, clock, operator):
    """A worker serving runs=rampdown, reports=remote, its pool warm."""
    operator.set("runs", "rampdown", actor="ops")
    operator.set("reports", "remote", actor="ops")
    made = Worker(path, clock)
    served = made.look()
    assert served.flag("runs").mode == "rampdown" and made.health.readable
    yield made
    made.store.engine.dispose()


def backup(path: Path, to: Path) -> Path:
    """A consistent copy, as `sqlite3 flags.db ".backup TO"` makes it."""
    source, target = sqlite3.connect(path), sqlite3.connect(to)
    source.backup(target)
    target.close()
    source.close()
    return to


def modes(snapshot) -> tuple[str, str]:
    return snapshot.flag("runs").mode, snapshot.flag("reports").mode


def assert_keeps_serving(worker: Worker, version: int, reason: str) -> None:
    for _ in range(3):  # every look, not only the first
        served = worker.look()
        assert modes(served) == ("rampdown", "remote")
        assert served.version == version
        assert worker.health.readable is False
        assert worker.health.reason == reason, worker.health.problem
        assert worker.sample("turnout_flag_store_readable") == 0


def events(caplog, name: str) -> list[dict]:
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("{") and json.loads(message).get("event") == name:
            found.append(json.loads(message))
    return found


# --- the file damaged in place ---------------------------------------------------------

def test_garbage_copied_into_the_same_file_is_noticed_though_sqlite_caches_it(worker, path,
                                                                               caplog):
    """SQLite's page cache would answer from memory: only the file's marks give it away."""
    version = worker.look().version
    size = path.stat().st_size
    inode = path.stat().st_ino
    with open(path, "r+b") as file:  # what `cp garbage flags.db` does: same inode
        file.write((b"not a database! " * (size // 16 + 1))[:size])
    assert path.stat().st_ino == inode and path.stat().st_size == size
    assert_keeps_serving(worker, version, problems.NOT_A_DATABASE)
    assert "not a database" in worker.health.problem
    assert str(path) in worker.health.problem
    assert "turnout flags kill" in worker.health.problem  # what to do
    logged = events(caplog, "flag_store_unreadable")
    assert len(logged) == 1  # once, not at every look
    assert logged[0]["reason"] == problems.NOT_A_DATABASE
    assert logged[0]["serving_version"] == version
    assert worker.sample("turnout_flag_store_problems_total", reason="not_a_database") == 1


@pytest.mark.parametrize("keep", [0, 4096, 10_000], ids=["to_zero", "to_one_page", "ragged"])
def test_a_truncated_file_is_noticed(worker, path, keep):
    version = worker.look().version
    os.truncate(path, keep)
    assert_keeps_serving(worker, version, problems.TRUNCATED)
    assert "truncated" in worker.health.problem or "empty" in worker.health.problem
    assert path.stat().st_size == keep  # the worker never turned it into a new, empty store


def test_a_damaged_page_fails_the_integrity_check(worker, path):
    """The header and the state row still read; SQLite's quick_check finds the rest."""
    version = worker.look().version
    connection = sqlite3.connect(path)
    page = connection.execute("PRAGMA page_size").fetchone()[0]
    audit = connection.execute("SELECT rootpage FROM sqlite_master "
                               "WHERE name = 'turnout_audit'").fetchone()[0]
    connection.close()
    with open(path, "r+b") as file:
        file.seek((audit - 1) * page)
        file.write(b"\xff" * page)  # the audit log's page, not the state row's
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version FROM turnout_state").fetchone()[0] == version
    connection.close()
    assert_keeps_serving(worker, version, problems.INTEGRITY)
    assert "damaged" in worker.health.problem or "integrity" in worker.health.problem


def test_a_deleted_file_is_noticed_and_never_recreated_by_the_worker(worker, path):
    version = worker.look().version
    path.unlink()
    assert_keeps_serving(worker, version, problems.MISSING)
    assert not path.exists()


# --- the file restored ----------------------------------------------------------------

@pytest.mark.parametrize("how", ["copy", "rename"])
def test_a_file_restored_after_garbage_is_read_again_at_the_next_look(worker, path, operator,
                                                                       how, caplog):
    version = worker.look().version
    copy = backup(path, path.with_name("backup.db"))
    good = path.read_bytes()
    with open(path, "r+b") as file:
        file.write(b"x" * len(good))
    assert_keeps_serving(worker, version, problems.NOT_A_DATABASE)
    if how == "copy":
        shutil.copyfile(copy, path)
    else:
        os.replace(copy, path)
    served = worker.look()  # one look
    assert worker.health.readable is True and worker.health.problem is None
    assert served.version == version and modes(served) == ("rampdown", "remote")
    assert worker.sample("turnout_flag_store_readable") == 1
    assert len(events(caplog, "flag_store_readable_again")) == 1
    operator.set("runs", "remote", actor="ops")  # and a change after it is taken up
    assert worker.look().flag("runs").mode == "remote"


def test_a_newer_file_renamed_over_the_store_is_read_though_old_connections_are_open(
        worker, path, clock):
    """Connections opened before the rename would read the old, unlinked file for ever."""
    newer = path.with_name("newer.db")
    shutil.copyfile(path, newer)
    other = SqlFlagStore.from_url(f"sqlite:///{newer}", FEATURES, clock=clock)
    other.set("runs", "remote", actor="ops")
    other.engine.dispose()
    os.replace(newer, path)
    served = worker.look()
    assert served.flag("runs").mode == "remote"
    assert worker.health.readable is True


@pytest.mark.parametrize("how", ["copy", "rename"])
def test_an_older_backup_restored_is_reported_and_never_served(worker, path, operator, how,
                                                                 caplog):
    copy = backup(path, path.with_name("backup.db"))
    old_version = SqlFlagStore.from_url(f"sqlite:///{copy}", FEATURES).version()
    operator.set("runs", "remote", actor="ops")  # after the backup
    served = worker.look()
    assert served.flag("runs").mode == "remote"
    if how == "copy":
        shutil.copyfile(copy, path)
    else:
        os.replace(copy, path)
    for _ in range(3):
        now = worker.look()
        assert now.version == served.version  # never back to the copy's version
        assert now.flag("runs").mode == "remote"
        assert worker.health.reason == problems.BACKWARDS
        assert worker.health.readable is False
        assert worker.health.store_version == old_version  # it did read the restored file
    assert str(old_version) in worker.health.problem and str(served.version) in \
        worker.health.problem
    assert "turnout flags repair" in worker.health.problem
    logged = events(caplog, "flag_store_version_backwards")
    assert len(logged) == 1
    assert (logged[0]["store_version"], logged[0]["serving_version"]) == \
        (old_version, served.version)
    assert "restored" in logged[0]["likely_cause"]


def test_a_version_edited_backwards_is_never_served(worker, path):
    served = worker.look()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE turnout_flags SET mode = 'local'")
        connection.execute("UPDATE turnout_state SET version = version - 10")
    connection.close()
    now = worker.look()
    assert now.version == served.version and modes(now) == ("rampdown", "remote")
    assert worker.health.reason == problems.BACKWARDS


def test_the_next_change_after_a_restore_is_taken_up(worker, path, operator):
    copy = backup(path, path.with_name("backup.db"))
    operator.set("runs", "remote", actor="ops")
    served = worker.look()
    shutil.copyfile(copy, path)
    worker.look()
    assert worker.health.reason == problems.BACKWARDS
    assert recovery.repair(operator, actor="ops").startswith("adopted the restored copy")
    now = worker.look()
    assert now.version > served.version
    assert now.flag("runs").mode == "rampdown"  # the copy's flags, made current on purpose
    assert worker.health.readable is True


# --- the kill switch after a restore and on a damaged file ---------------------------------

def test_a_released_kill_switch_is_never_pulled_again_by_a_restore(worker, path, operator):
    """Issue 8: version 75 -> 74 re-activated a released kill. Here: the backup was taken
    while killed, the kill released, the backup restored."""
    operator.kill(actor="oncall")
    copy = backup(path, path.with_name("killed.db"))
    operator.unkill(actor="oncall")
    assert worker.look().killed is False
    shutil.copyfile(copy, path)
    assert worker.look().killed is False  # the worker keeps what it serves
    assert worker.health.reason == problems.BACKWARDS
    # ... and the next change does not carry the copy's kill switch with it:
    with pytest.raises(FlagStoreRestored) as refused:
        operator.set("reports", "local", actor="ops")
    assert "turnout flags repair" in refused.value.message and str(path) in refused.value.message
    with pytest.raises(FlagStoreRestored):
        operator.unkill(actor="ops")
    assert worker.look().killed is False
    assert "kill switch is off, as last set" in recovery.repair(operator, actor="ops")
    now = worker.look()
    assert now.killed is False and worker.health.readable is True
    operator.set("reports", "local", actor="ops")  # writes work again
    assert worker.look().flag("reports").mode == "local"


def test_the_kill_switch_works_after_a_restore(worker, path, operator):
    copy = backup(path, path.with_name("backup.db"))
    operator.set("runs", "remote", actor="ops")
    worker.look()
    os.replace(copy, path)
    assert worker.look().killed is False
    note = recovery.kill(operator, actor="oncall")
    assert note is not None and "unkill" in note and "turnout flags list" in note
    served = worker.look()  # the next look
    assert served.killed is True
    assert worker.health.readable is True
    operator.unkill(actor="oncall")
    assert worker.look().killed is False


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_kill_on_a_damaged_file_sets_it_aside_and_starts_a_killed_store(worker, path,
                                                                         operator, damage):
    version = worker.look().version
    if damage == "garbage":
        path.write_bytes(b"garbage " * 4096)
    elif damage == "truncated":
        os.truncate(path, 0)
    else:
        path.unlink()
    before = path.read_bytes() if path.exists() else None
    worker.look()
    assert worker.health.readable is False

    note = recovery.kill(operator, actor="oncall")
    assert note is not None and "started a new store with the kill switch ON" in note
    aside = sorted(path.parent.glob("flags.db.broken-*"))
    if before is None:
        assert aside == [] and "no file to keep" in note
    else:
        kept = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
        assert len(kept) == 1 and kept[0].read_bytes() == before  # nothing thrown away
        assert str(kept[0]) in note
    served = worker.look()
    assert served.killed is True and served.version > version
    assert worker.health.readable is True
    entry = operator.history()[0]
    assert (entry.feature, entry.actor, entry.new) == ("*", "oncall", "new store, killed")
    # the new store is whole: a flag can be set, the mismatch table is there
    operator.set("runs", "remote", actor="ops")
    with operator.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM turnout_mismatches")).scalar() == 0


def test_a_writer_refuses_a_damaged_file_without_changing_it(worker, path, operator):
    path.write_bytes(b"garbage " * 4096)
    for change in (lambda: operator.set("runs", "remote", actor="ops"),
                   lambda: operator.unkill(actor="ops"), operator.snapshot, operator.history):
        with pytest.raises(FlagStoreError) as refused:
            change()
        assert refused.value.reason == problems.NOT_A_DATABASE
        assert str(path) in refused.value.message
    assert path.read_bytes() == b"garbage " * 4096


# --- restore and repair -------------------------------------------------------------------

def test_restore_writes_a_backups_flags_as_one_change_and_keeps_the_kill_switch(
        worker, path, operator):
    copy = backup(path, path.with_name("backup.db"))
    operator.set("runs", "local", actor="ops")
    operator.set("reports", "shadow", actor="ops")
    operator.kill(actor="oncall")
    served = worker.look()
    said = recovery.restore(operator, copy, actor="ops")
    assert "reports, runs changed" in said and "kill switch is ON" in said
    now = worker.look()
    assert now.version > served.version and now.killed is True
    assert modes(now) == ("rampdown", "remote")
    assert [(e.feature, e.old, e.new) for e in operator.history(limit=3)] == [
        ("*", "flags as they were", f"flags restored from {copy}"),
        ("runs", "local", "rampdown"), ("reports", "shadow", "remote")]


def test_restore_over_a_damaged_file(worker, path, operator):
    copy = backup(path, path.with_name("backup.db"))
    path.write_bytes(b"garbage " * 4096)
    recovery.restore(operator, copy, actor="ops")
    now = worker.look()
    assert modes(now) == ("rampdown", "remote")
    assert now.killed is False  # as last set: the last write was a flag, not a kill


@pytest.mark.parametrize("bad", ["missing", "garbage", "bad_row"])
def test_a_bad_backup_is_refused_and_nothing_changes(worker, path, operator, bad):
    copy = path.with_name("backup.db")
    if bad == "garbage":
        copy.write_bytes(b"garbage " * 512)
    elif bad == "bad_row":
        backup(path, copy)
        connection = sqlite3.connect(copy)
        with connection:
            connection.execute("UPDATE turnout_flags SET mode = 'warp' WHERE feature = 'runs'")
        connection.close()
    version = operator.version()
    with pytest.raises(FlagStoreError) as refused:
        recovery.restore(operator, copy, actor="ops")
    assert str(copy) in refused.value.message and "nothing was restored" in \
        refused.value.message
    assert operator.version() == version


def test_repair_of_a_healthy_store_changes_nothing(worker, operator):
    version = operator.version()
    assert recovery.repair(operator, actor="ops").startswith("nothing to repair")
    assert operator.version() == version


def test_every_change_is_recorded_beside_the_file(path, operator):
    operator.kill(actor="oncall")
    recorded = last_write.read(path)
    assert (recorded.version, recorded.killed, recorded.by) == \
        (operator.version(), True, "oncall")


def test_a_change_leaves_the_whole_store_in_the_file(path, operator):
    """The WAL is folded in after each change: a plain copy of flags.db is a whole backup."""
    operator.set("runs", "live", actor="ops")
    copy = path.with_name("plain-copy.db")
    shutil.copyfile(path, copy)  # without flags.db-wal
    assert SqlFlagStore.from_url(f"sqlite:///{copy}", FEATURES).snapshot().flag("runs") == \
        Flag("runs", "live")


def test_a_worker_booting_on_a_damaged_store_still_starts(path, operator, caplog):
    from shims.control import build_control

    operator.set("runs", "remote", actor="ops")
    path.write_bytes(b"garbage " * 4096)
    caplog.set_level(logging.ERROR, logger="turnout")
    control = build_control({"FLAGS_URL": f"sqlite:///{path}", "FLAGS_REFRESH": 0,
                             "BREAKER_FAILURES": 5, "BREAKER_RESET_SECONDS": 5}, FEATURES)
    assert control.flags.flag("runs").mode == "local"  # nothing read yet: every feature local
    assert control.flags.healthy is False
    assert events(caplog, "flag_store_unreadable")[0]["at"] == "start-up"
    control.store.engine.dispose()


def test_a_read_overtaken_by_a_newer_one_is_not_installed():
    """On PostgreSQL a refresh's reads yield: the admin API's refresh_now may install a newer
    version meanwhile; the slower refresh must not then put its older snapshot back."""
    from shims.flags.model import FlagSnapshot

    class Source:
        def __init__(self):
            self.current = FlagSnapshot(version=1, flags={"runs": Flag("runs", "live")})
            self.during_read = None  # what happens while a snapshot is being read

        def version(self):
            return self.current.version

        def snapshot(self):
            read, action = self.current, self.during_read
            self.during_read = None
            if action is not None:
                action()
            return read

    source = Source()
    cache = FlagCache(source, refresh_interval=0)
    assert cache.snapshot().version == 1
    source.current = FlagSnapshot(version=2, flags={"runs": Flag("runs", "remote")})

    def newer_change_served_meanwhile():
        source.current = FlagSnapshot(version=3, flags={"runs": Flag("runs", "local")})
        cache.refresh_now()

    source.during_read = newer_change_served_meanwhile
    served = cache.snapshot()  # reads version 2, while version 3 is installed
    assert served.version == 3 and served.flag("runs").mode == "local"
    assert cache.health.readable is True
