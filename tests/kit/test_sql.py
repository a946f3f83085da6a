"""shims/sql.py on every SQLAlchemy the kit supports: the engines it makes, the databases
it refuses with a reason, and schemas created by several workers at once (B5 found the
flag store's mismatch table losing that race under four workers)."""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import inspect, text
from sqlalchemy.pool import QueuePool, StaticPool

from notes_app import Base, create_schema
from shims.compat import SQLALCHEMY_2
from shims.flags.model import FeatureInfo
from shims.flags.store import SqlFlagStore, metadata as flag_metadata
from shims.mismatches import SqlMismatchLog, metadata as mismatch_metadata
from shims.settings import ConfigError
from shims.sql import make_engine, normalise_url
from support import another_worker_wins_the_race

FEATURES = {"notes": FeatureInfo("notes", has_remote=True, owns_data=True)}


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def test_a_sqlite_file_gets_a_pool_of_tuned_connections(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'run' / 'app.db'}", pool_size=3)
    assert (tmp_path / "run").is_dir()  # a fresh checkout's run directory is made
    assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 3
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.commit()  # the 2.0-style Connection on 1.4 too (future=True)
    engine.dispose()


def test_an_in_memory_database_lives_in_its_one_connection():
    engine = make_engine("sqlite://")
    assert isinstance(engine.pool, StaticPool)
    engine.dispose()


@pytest.mark.skipif(not SQLALCHEMY_2, reason="SQLAlchemy 2.0 brings the psycopg 3 dialect")
def test_postgresql_means_psycopg_3():
    assert normalise_url("postgresql://u:secret@db/app") == "postgresql+psycopg://u:secret@db/app"
    assert normalise_url("postgres://db/app") == "postgresql+psycopg://db/app"


@pytest.mark.skipif(SQLALCHEMY_2, reason="SQLAlchemy 1.4 has no psycopg 3 dialect")
def test_postgresql_on_sqlalchemy_1_4_is_refused_saying_what_to_install():
    with pytest.raises(ConfigError) as refused:
        make_engine("postgresql://ops:secret@db.internal/flags")
    message = str(refused.value)
    assert "SQLAlchemy 2.0" in message and sqlalchemy.__version__ in message
    assert "turnout[postgres]" in message and "db.internal" in message
    assert "secret" not in message


def test_an_apps_schema_survives_losing_the_race(url):
    with another_worker_wins_the_race(Base.metadata, url):
        engine = make_engine(url)
        create_schema(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        engine.dispose()


@pytest.mark.parametrize("raced", [flag_metadata, mismatch_metadata], ids=["flags", "mismatches"])
def test_the_flag_store_and_mismatch_log_survive_losing_the_race(url, raced):
    with another_worker_wins_the_race(raced, url):
        store = SqlFlagStore.from_url(url, FEATURES)
        store.create_schema()
        SqlMismatchLog(store.engine).create_schema()
        assert store.snapshot().version > 1_700_000_000_000  # made now: a time in ms
        store.engine.dispose()
