"""Every gunicorn worker creates its schema as it boots (no --preload), so on a fresh database
another worker can create a table between this one's check and its CREATE TABLE. The loser must
boot anyway: a worker that fails to boot makes gunicorn stop the whole app (B5 found the flag
store's mismatch table losing that race under four workers)."""

from contextlib import contextmanager

import pytest
from sqlalchemy import event, inspect

from monolith.db import Base, create_schema
from monolith.wiring import FEATURES
from shims.flags.store import SqlFlagStore, metadata as flag_metadata
from shims.mismatches import SqlMismatchLog, metadata as mismatch_metadata
from shims.sql import make_engine


@contextmanager
def another_worker_wins_the_race(metadata, url):
    """Just before this process creates each table, another one creates it first."""
    rival = make_engine(url)
    won: set[str] = set()

    def create_it_first(table, connection, **_):
        if table.name not in won:  # the rival's own CREATE fires this event too
            won.add(table.name)
            table.create(rival, checkfirst=True)

    tables = list(metadata.tables.values())
    for table in tables:
        event.listen(table, "before_create", create_it_first)
    yield
    for table in tables:
        event.remove(table, "before_create", create_it_first)
    rival.dispose()
    assert won, "the rival created no table: the race was not staged"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'fresh.db'}"


def test_the_monolith_schema_survives_losing_the_race(url):
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
