"""Ids that two databases can mint independently without ever colliding.

During a migration both sides of a feature create rows (a canary sends some
runners' writes to the service, the rest to the monolith) and each write is
mirrored to the other side with its id. Auto-increment counters would hand out
the same id on both sides; these ids are the creation time in milliseconds
(41 bits, good until 2089) followed by 22 random bits, so two rows created in
the same millisecond collide with odds of one in four million.

They are 63-bit integers: safe in SQLite, PostgreSQL BIGINT and Python JSON,
but above JavaScript's 2**53, which a JavaScript client's JSON.parse rounds without a
word. Between services they travel as JSON integers (`format: int64` in the OpenAPI);
a public API for browsers sends them as strings of digits (`ids_as_strings`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any

from shims.limits import Limits

Id = Annotated[int, Limits(format="int64")]
"""A contract's id type: an integer, `format: int64` in the OpenAPI document. No range is
enforced on the wire: an id no row can have is the contract's NotFound on every side."""
INT64 = Annotated[int, Limits(minimum=-(2**63), maximum=2**63 - 1, format="int64")]
"""An integer a database column can hold: anything wider would overflow its driver (a 500)."""

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
RANDOM_BITS = 22


def new_id() -> int:
    elapsed = int(time.time() * 1000) - EPOCH_MS
    return (elapsed << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)


def is_id_key(key: str) -> bool:
    """`id` and `<thing>_id`: the fields that hold ids, by the kit's naming rule."""
    return key == "id" or key.endswith("_id")


def ids_as_strings(value: Any, is_id: Callable[[str], bool] = is_id_key) -> Any:
    """Wire data (shims/wire.to_wire) with every integer under an id key as a string of
    digits, so JavaScript clients keep it exact; nothing else changes."""
    if isinstance(value, list):
        return [ids_as_strings(item, is_id) for item in value]
    if isinstance(value, dict):
        return {key: _id_string(item) if is_id(key) else ids_as_strings(item, is_id)
                for key, item in value.items()}
    return value


def _id_string(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value
