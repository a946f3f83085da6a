"""The monolith's database: one engine per app, sessions opened per service call."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Base
from monolith.runs.sync import RUNS_OUTBOX
from shims import outbox
from shims.sql import create_tables, make_engine
from shims.transactions import joinable_sessions

__all__ = ["create_schema", "make_engine", "make_sessions"]


def make_sessions(engine: Engine) -> sessionmaker:
    """Sessions whose changes to users and runs are recorded in the outbox, in the same
    transaction (monolith/runs/sync.py), and that join a keyed write's transaction so its
    rows commit with its recorded outcome (shims/outcomes.py)."""
    return RUNS_OUTBOX.track(joinable_sessions(engine))


def create_schema(engine: Engine) -> None:
    create_tables(Base.metadata, engine)  # safe when several workers boot at once
    create_tables(outbox.metadata, engine)
