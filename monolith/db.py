"""The monolith's database: one engine per app, sessions opened per service call."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Base
from monolith.runs.sync import RUNS_OUTBOX
from shims import outbox
from shims.sql import create_tables, make_engine

__all__ = ["create_schema", "make_engine", "make_sessions"]


def make_sessions(engine: Engine) -> sessionmaker:
    """Sessions whose changes to users and runs are recorded in the outbox, in the same
    transaction (monolith/runs/sync.py)."""
    # expire_on_commit=False: services convert rows to frozen dataclasses after commit.
    return RUNS_OUTBOX.track(sessionmaker(engine, expire_on_commit=False))


def create_schema(engine: Engine) -> None:
    create_tables(Base.metadata, engine)  # safe when several workers boot at once
    create_tables(outbox.metadata, engine)
