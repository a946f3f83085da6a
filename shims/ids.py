"""Ids that two databases can mint independently without ever colliding.

During a migration both sides of a feature create rows (a canary sends some
runners' writes to the service, the rest to the monolith) and each write is
mirrored to the other side with its id. Auto-increment counters would hand out
the same id on both sides; these ids are the creation time in milliseconds
(41 bits, good until 2089) followed by 22 random bits, so two rows created in
the same millisecond collide with odds of one in four million.

They are 63-bit integers: safe in SQLite, PostgreSQL BIGINT and Python JSON,
but above JavaScript's 2**53, so browser clients should handle ids as strings.
"""

from __future__ import annotations

import secrets
import time

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
RANDOM_BITS = 22


def new_id() -> int:
    elapsed = int(time.time() * 1000) - EPOCH_MS
    return (elapsed << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)
