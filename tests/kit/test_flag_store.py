"""SqlFlagStore on SQLite (a temporary file) and on PostgreSQL (a throwaway schema):
schema creation, versions, the audit log, the kill switch, refusals and corrupt rows.

The stores here run on a stopped clock, so versions are START, START + 1, ...: a version is
the time of the change in milliseconds, or one more than the version before, whichever is
greater (tests/kit/test_flag_store_faults.py has the moving clock)."""

import datetime as dt
import sqlite3

import pytest
from sqlalchemy import func, select, text

from shims.flags.model import FeatureInfo, Flag, FlagError
from shims.flags.store import KILL_SWITCH, SqlFlagStore, audit_table, flags_table

NOW = 1_800_000_000.0  # seconds, the stopped clock
START = 1_800_000_000_000  # a new store's version: NOW in milliseconds
FEATURES = {
    "runs": FeatureInfo("runs", has_remote=True, owns_data=True),
    "reports": FeatureInfo("reports", has_remote=True),
    "strava": FeatureInfo("strava", has_remote=False),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flags.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def new_store(url):
    """Opens stores on the one database; every engine is disposed of afterwards."""
    made = []

    def make():
        store = SqlFlagStore.from_url(url, FEATURES, clock=lambda: NOW)
        made.append(store)
        return store

    yield make
    for store in made:
        store.engine.dispose()


@pytest.fixture
def store(new_store):
    store = new_store()
    store.create_schema()
    return store


def now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def count(store, table):
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def write_row(store, feature, mode, percent=0.0):
    """What someone editing the table by hand might leave behind."""
    with store.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO turnout_flags (feature, mode, percent, updated_at, updated_by) "
            "VALUES (:feature, :mode, :percent, :at, 'dba')"),
            {"feature": feature, "mode": mode, "percent": percent, "at": now()})


# --- schema --------------------------------------------------------------------------------

def test_a_fresh_store_is_all_local_at_the_time_it_was_made(store):
    snapshot = store.snapshot()
    assert snapshot.version == START
    assert snapshot.killed is False
    assert snapshot.flags == {}
    assert snapshot.problems == ()
    assert snapshot.flag("runs") == Flag("runs", "local", 0.0)
    assert store.version() == START
    assert store.history() == []


def test_create_schema_is_idempotent(store):
    store.set("runs", "shadow", actor="ada")
    store.create_schema()
    store.create_schema()
    assert store.version() == START + 1  # the state row is never reset
    assert store.snapshot().flag("runs").mode == "shadow"
    assert len(store.history()) == 1


def test_two_stores_on_one_database(store, new_store):
    other = new_store()
    other.create_schema()  # a second process starting up
    assert other.version() == store.version() == START
    store.set("runs", "canary", 25, actor="ada")
    assert other.version() == START + 1
    assert other.snapshot().flag("runs") == Flag("runs", "canary", 25.0)
    other.kill(actor="bob")
    assert store.snapshot().killed is True
    assert [e.actor for e in store.history()] == ["bob", "ada"]
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM turnout_state")).scalar_one() == 1


def test_two_stores_creating_the_schema_in_turn_on_an_empty_database(new_store):
    first, second = new_store(), new_store()
    first.create_schema()
    second.create_schema()
    first.create_schema()
    assert first.version() == second.version() == START


# --- setting flags -------------------------------------------------------------------------

def test_set_bumps_the_version_and_shows_in_the_snapshot(store):
    flag = store.set("runs", "canary", 30, actor="ada@laptop")
    assert flag == Flag("runs", "canary", 30.0)
    assert store.version() == START + 1
    snapshot = store.snapshot()
    assert snapshot.version == START + 1
    assert snapshot.flags == {"runs": Flag("runs", "canary", 30.0)}

    assert store.set("runs", "remote", actor="ada@laptop") == Flag("runs", "remote", 0.0)
    assert store.set("reports", "shadow", actor="bob") == Flag("reports", "shadow", 0.0)
    snapshot = store.snapshot()
    assert snapshot.version == START + 3
    assert snapshot.flags == {"runs": Flag("runs", "remote", 0.0),
                              "reports": Flag("reports", "shadow", 0.0)}
    assert count(store, flags_table) == 2  # one row per feature, updated in place


@pytest.mark.parametrize("percent, expected", [(0, 0.0), (100, 100.0), ("12.5", 12.5),
                                               (" 40 ", 40.0), (7.25, 7.25)])
def test_canary_percentages(store, percent, expected):
    assert store.set("runs", "canary", percent, actor="ada").percent == expected
    assert store.snapshot().flag("runs").percent == expected


def test_setting_the_same_value_again_is_still_recorded(store):
    store.set("runs", "shadow", actor="ada")
    store.set("runs", "shadow", actor="bob")
    assert store.version() == START + 2
    assert [(e.actor, e.old, e.new) for e in store.history()] == [
        ("bob", "shadow", "shadow"), ("ada", "local", "shadow")]


def test_every_mode_can_be_set_on_a_feature_with_a_remote_side(store):
    for mode in ("local", "dualwrite", "shadow", "live", "rampdown", "remote"):
        assert store.set("runs", mode, actor="ada").mode == mode
        assert store.snapshot().flag("runs").mode == mode
    assert store.set("strava", "local", actor="ada") == Flag("strava", "local", 0.0)


# --- the audit log -------------------------------------------------------------------------

def test_audit_entries_say_who_when_and_old_to_new_newest_first(store):
    before = now() - dt.timedelta(seconds=1)
    store.set("runs", "shadow", actor="ada@laptop")
    store.set("runs", "canary", 30, actor="bob@ops")
    store.set("reports", "live", actor="carol@ops")
    store.set("runs", "remote", actor="ada@laptop")
    after = now() + dt.timedelta(seconds=1)

    entries = store.history()
    assert [(e.actor, e.feature, e.old, e.new) for e in entries] == [
        ("ada@laptop", "runs", "canary 30%", "remote"),
        ("carol@ops", "reports", "local", "live"),
        ("bob@ops", "runs", "shadow", "canary 30%"),
        ("ada@laptop", "runs", "local", "shadow"),
    ]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    for entry in entries:
        assert isinstance(entry.at, dt.datetime)
        assert entry.at.tzinfo is None
        assert before <= entry.at <= after

    assert [(e.old, e.new) for e in store.history("runs")] == [
        ("canary 30%", "remote"), ("shadow", "canary 30%"), ("local", "shadow")]
    assert [e.new for e in store.history("reports")] == ["live"]
    assert store.history("strava") == []
    assert [e.new for e in store.history(limit=2)] == ["remote", "live"]
    assert [e.new for e in store.history("runs", limit=1)] == ["remote"]


def test_fractional_percentages_are_described_exactly(store):
    store.set("runs", "canary", 12.5, actor="ada")
    store.set("runs", "canary", 100, actor="ada")
    assert [(e.old, e.new) for e in store.history("runs")] == [
        ("canary 12.5%", "canary 100%"), ("local", "canary 12.5%")]


def test_history_of_an_unknown_feature_is_refused(store):
    with pytest.raises(FlagError) as caught:
        store.history("teleport")
    assert caught.value.field == "feature"
    assert "teleport" in caught.value.message and "runs" in caught.value.message


# --- the kill switch -----------------------------------------------------------------------

def test_kill_and_unkill_are_audited_under_the_kill_switch(store):
    store.set("runs", "remote", actor="ada")
    store.kill(actor="oncall@pager")
    snapshot = store.snapshot()
    assert snapshot.killed is True
    assert snapshot.version == START + 2
    assert snapshot.flag("runs").mode == "remote"  # kept, to restore later

    store.kill(actor="second@pager")  # pressing it twice is harmless, and recorded
    store.unkill(actor="oncall@pager")
    snapshot = store.snapshot()
    assert snapshot.killed is False
    assert snapshot.version == START + 4
    assert snapshot.flag("runs").mode == "remote"

    assert [(e.actor, e.feature, e.old, e.new) for e in store.history(KILL_SWITCH)] == [
        ("oncall@pager", "*", "killed", "live"),
        ("second@pager", "*", "killed", "killed"),
        ("oncall@pager", "*", "live", "killed"),
    ]
    assert [e.feature for e in store.history()] == ["*", "*", "*", "runs"]
    assert [e.feature for e in store.history("runs")] == ["runs"]


# --- refusals write nothing ----------------------------------------------------------------

REFUSED = {
    "unknown_feature": (("teleport", "remote", None), "feature"),
    "unknown_mode": (("runs", "warp", None), "mode"),
    "mode_in_capitals": (("runs", "REMOTE", None), "mode"),
    "percent_130": (("runs", "canary", 130), "percent"),
    "percent_negative": (("runs", "canary", -1), "percent"),
    "percent_nan": (("runs", "canary", float("nan")), "percent"),
    "percent_abc": (("runs", "canary", "abc"), "percent"),
    "percent_bool": (("runs", "canary", True), "percent"),
    "percent_list": (("runs", "canary", [30]), "percent"),
    "canary_without_percent": (("runs", "canary", None), "percent"),
    "percent_with_remote": (("runs", "remote", 30), "percent"),
    "percent_with_local": (("runs", "local", 5), "percent"),
    "remote_mode_without_remote_side": (("strava", "remote", None), "mode"),
    "shadow_without_remote_side": (("strava", "shadow", None), "mode"),
}


@pytest.mark.parametrize("arguments, field", REFUSED.values(), ids=REFUSED.keys())
def test_bad_input_is_refused_and_nothing_is_written(store, arguments, field):
    store.set("runs", "shadow", actor="ada")
    before = store.snapshot()
    with pytest.raises(FlagError) as caught:
        store.set(*arguments, actor="mallory")
    assert caught.value.field == field
    assert caught.value.message
    assert store.version() == before.version
    assert store.snapshot() == before
    assert count(store, audit_table) == 1
    assert [e.actor for e in store.history()] == ["ada"]


def test_refusals_explain_what_is_allowed(store):
    with pytest.raises(FlagError, match="known features: reports, runs, strava"):
        store.set("teleport", "local", actor="ada")
    with pytest.raises(FlagError, match="modes: local, dualwrite, shadow, canary"):
        store.set("runs", "warp", actor="ada")
    with pytest.raises(FlagError, match="no remote implementation"):
        store.set("strava", "remote", actor="ada")


# --- rows edited by hand -------------------------------------------------------------------

CORRUPT = {
    "unknown_mode": ("runs", "warp", 0.0),
    "canary_250": ("runs", "canary", 250.0),
    "canary_negative": ("runs", "canary", -5.0),
    "unknown_feature": ("teleport", "remote", 0.0),
    "remote_without_remote_side": ("strava", "remote", 0.0),
}


@pytest.mark.parametrize("feature, mode, percent", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_row_is_reported_not_trusted(store, feature, mode, percent):
    write_row(store, feature, mode, percent)
    snapshot = store.snapshot()
    assert feature not in snapshot.flags
    assert [name for name, _ in snapshot.problems] == [feature]
    assert snapshot.problems[0][1]  # says what is wrong


def test_good_rows_are_still_served_beside_a_corrupt_one(store):
    store.set("reports", "live", actor="ada")
    write_row(store, "runs", "warp")
    snapshot = store.snapshot()
    assert snapshot.flags == {"reports": Flag("reports", "live", 0.0)}
    assert len(snapshot.problems) == 1
    assert snapshot.problems[0][0] == "runs"
    assert "warp" in snapshot.problems[0][1]


def test_a_percentage_left_on_a_non_canary_row_is_ignored(store):
    """percent only means something for canary; elsewhere the column's value is not read."""
    write_row(store, "runs", "shadow", 30.0)
    snapshot = store.snapshot()
    assert snapshot.flag("runs") == Flag("runs", "shadow", 0.0)
    assert snapshot.problems == ()


def test_setting_over_a_corrupt_row_repairs_it(store):
    write_row(store, "runs", "canary", 250.0)
    assert store.set("runs", "canary", 25, actor="ada") == Flag("runs", "canary", 25.0)
    snapshot = store.snapshot()
    assert snapshot.problems == ()
    assert snapshot.flag("runs") == Flag("runs", "canary", 25.0)
    assert [(e.old, e.new) for e in store.history("runs")] == [("canary 250%", "canary 25%")]
    write_row(store, "reports", "warp")
    store.set("reports", "remote", actor="ada")
    assert [(e.old, e.new) for e in store.history("reports")] == [("local", "remote")]


def test_the_store_is_read_again_once_an_overwritten_file_is_restored(tmp_path):
    """`cp` of garbage over the live file, then of the backup: the same pooled engine reads
    it again (SQLite connections that saw the garbage would fail for ever; they are dropped)."""
    path = tmp_path / "flags.db"
    store = SqlFlagStore.from_url(f"sqlite:///{path}", FEATURES)
    store.create_schema()
    store.set("runs", "rampdown", actor="test")
    version = store.version()  # a pooled connection that has read the file
    operator = sqlite3.connect(path)  # the backup: the WAL folded into the file, then a copy
    assert operator.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    operator.close()
    backup = path.read_bytes()
    with open(path, "r+b") as garbage:
        garbage.write(b"x" * len(backup))
    for _ in range(3):  # every pooled connection meets the garbage
        with pytest.raises(Exception, match="not a database"):
            store.version()
    with open(path, "r+b") as restored:
        restored.write(backup)
    assert store.version() == version
    assert store.snapshot().flag("runs").mode == "rampdown"
    store.engine.dispose()


# --- versions are times ----------------------------------------------------------------------

def test_versions_are_the_time_of_the_change_and_never_repeat(url):
    """A change's version is its time in ms, or one past the version before if that is
    later (changes within one millisecond, a clock set back): never the same twice."""
    clock = iter([1_800_000_000.0, 1_800_000_005.0, 1_800_000_005.0, 1_799_999_000.0,
                  1_800_000_010.0])
    store = SqlFlagStore.from_url(url, FEATURES, clock=lambda: next(clock))
    store.create_schema()
    versions = [store.version()]
    for mode in ("shadow", "live", "rampdown", "remote"):
        store.set("runs", mode, actor="ada")
        versions.append(store.version())
    store.engine.dispose()
    assert versions == [1_800_000_000_000, 1_800_000_005_000, 1_800_000_005_001,
                        1_800_000_005_002, 1_800_000_010_000]


def legacy_store(store):
    """A store as earlier releases left it: a small counter for a version (in a 32-bit
    column on PostgreSQL)."""
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE turnout_state"))
        connection.execute(text("CREATE TABLE turnout_state (id INTEGER PRIMARY KEY, "
                                "version INTEGER NOT NULL, killed BOOLEAN NOT NULL)"))
        connection.execute(text("INSERT INTO turnout_state VALUES (1, 75, false)"))


def test_a_store_with_a_counter_for_a_version_keeps_working(store, new_store):
    legacy_store(store)
    upgraded = new_store()
    upgraded.create_schema()  # a worker of this release starting on it
    assert upgraded.version() == 75
    upgraded.kill(actor="ops")
    assert upgraded.version() == START  # the next change jumps to the time: still forward
    upgraded.set("runs", "remote", actor="ops")
    assert upgraded.version() == START + 1
    assert upgraded.snapshot().killed is True


def test_a_postgresql_version_column_is_widened_to_64_bits(postgres_url):
    store = SqlFlagStore.from_url(postgres_url, FEATURES, clock=lambda: NOW)
    store.create_schema()
    legacy_store(store)
    store.create_schema()
    with store.engine.connect() as connection:
        kind = connection.execute(text(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'turnout_state' AND column_name = 'version'"
        )).scalar()
    store.set("runs", "remote", actor="ops")  # START does not fit in 32 bits
    store.engine.dispose()
    assert kind == "bigint"
