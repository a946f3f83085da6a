"""One contract per Runnerly feature: a small Protocol plus its frozen dataclasses.

The monolith's views only ever call these. `Local<Feature>` implementations live
with the monolith; remote clients and extracted services honour the same shapes.
Input dataclasses have a `parse(mapping)` constructor that validates untrusted
data and raises `ValidationError` naming the field, so both sides refuse bad
input alike.
"""

MAX_ID = 2**63 - 1
"""Ids are positive 64-bit integers on every side (SQLite INTEGER, PostgreSQL BIGINT)."""


def possible_id(value: int) -> bool:
    """False for an id no row can have; looking one up would overflow the database driver."""
    return 0 < value <= MAX_ID
