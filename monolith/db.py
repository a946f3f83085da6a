"""The monolith's database: one engine per app, sessions opened per service call."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Base
from shims.sql import create_tables, make_engine

__all__ = ["create_schema", "make_engine", "make_sessions"]


def make_sessions(engine: Engine) -> sessionmaker:
    # expire_on_commit=False: services convert rows to frozen dataclasses after commit.
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    create_tables(Base.metadata, engine)  # safe when several workers boot at once
