"""Sticky percentage buckets: the same actor lands on the same side every time.

An actor's bucket is a stable hash of feature and actor id into [0, 100). It
goes remote when its bucket is below the percentage, so raising the percentage
only ever moves actors from local to remote, never back. Salting with the
feature name spreads each feature's canary over different users.
"""

from __future__ import annotations

import hashlib


def bucket(feature: str, actor: object) -> float:
    digest = hashlib.blake2b(f"{feature}:{actor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


def goes_remote(feature: str, actor: object, percent: float) -> bool:
    return bucket(feature, actor) < percent
