"""Where the bookshop keeps its data: BOOKSHOP_DATABASE_URI, or bookshop.db here."""

import os
from pathlib import Path


def database_uri() -> str:
    return os.environ.get("BOOKSHOP_DATABASE_URI") or f"sqlite:///{Path.cwd() / 'bookshop.db'}"
