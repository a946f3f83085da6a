"""The newest change written to a SQLite flag store, kept in a small file beside it.

A copy of `flags.db` restored over the live file (`cp backup flags.db`, `mv`) carries the
version of its day, older than the one every worker serves. Workers notice on their own
and keep what they serve; but the next change would carry the whole restored file with it
(a kill switch released since the backup would be on again). Only something outside the
file can tell a writer that the file went back in time: this record, `flags.db.last-write`,
rewritten after every change. A writer that finds the file older than the record refuses
to write over it until `turnout flags repair` adopts the copy (or `turnout flags kill`,
which is always safe). A PostgreSQL store has no such record: restoring it is a database
administrator's deliberate act.

The record is a hint, never the truth: it is written after the change commits, so it can
lag (no harm: a lagging record never makes a file look older than it is), and a missing or
unreadable record only turns the check off.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LastWrite:
    version: int
    killed: bool
    at: str  # ISO 8601, UTC
    by: str


def record_path(database: Path) -> Path:
    return database.with_name(f"{database.name}.last-write")


def read(database: Path) -> LastWrite | None:
    try:
        raw = json.loads(record_path(database).read_text())
        return LastWrite(version=int(raw["version"]), killed=bool(raw["killed"]),
                         at=str(raw["at"]), by=str(raw["by"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(database: Path, version: int, killed: bool, by: str) -> None:
    """Best effort: the change itself is committed; a record that cannot be written only
    leaves the next restore unrecognised by writers (workers still notice it)."""
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    target = record_path(database)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        temporary.write_text(json.dumps(asdict(LastWrite(version, killed, at, by))))
        os.replace(temporary, target)  # readers see the old record or the new, never half
    except OSError:
        temporary.unlink(missing_ok=True)
