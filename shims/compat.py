"""Where the SQLAlchemy versions the kit supports differ, in one place.

The kit runs on SQLAlchemy 1.4 (what legacy monoliths run) and 2.x. It writes the 2.0 style
throughout, which 1.4 runs once its engines are made with `future=True` (shims/sql.py); the
few things 1.4 lacks are decided by this flag, so every difference is found from here and
goes with it the day 1.4 is dropped.
"""

from __future__ import annotations

import sqlalchemy

SQLALCHEMY_2 = int(sqlalchemy.__version__.split(".", 1)[0]) >= 2
