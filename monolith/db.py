"""The monolith's database: one engine per app, sessions opened per service call."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Base
from shims.sql import create_tables, make_engine
from shims.transactions import joinable_sessions

__all__ = ["create_schema", "make_engine", "make_sessions"]


def make_sessions(engine: Engine) -> sessionmaker:
    # Joinable: a keyed write commits its rows with its recorded outcome (shims/outcomes.py).
    return joinable_sessions(engine)


def create_schema(engine: Engine) -> None:
    create_tables(Base.metadata, engine)  # safe when several workers boot at once
