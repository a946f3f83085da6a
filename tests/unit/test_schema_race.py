"""Every gunicorn worker creates its schema as it boots (no --preload), so on a fresh database
another worker can create a table between this one's check and its CREATE TABLE. The loser must
boot anyway: a worker that fails to boot makes gunicorn stop the whole app. The kit's own
tables are raced in tests/kit/test_sql.py; here, Runnerly's."""

from sqlalchemy import inspect

from monolith.db import Base, create_schema
from shims.sql import make_engine
from support import another_worker_wins_the_race


def test_the_monolith_schema_survives_losing_the_race(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with another_worker_wins_the_race(Base.metadata, url):
        engine = make_engine(url)
        create_schema(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        engine.dispose()
