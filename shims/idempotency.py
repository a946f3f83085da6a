"""Idempotency keys: which write a request means, so that a repeat of it is not applied twice.

A caller names a write with a key in the `Idempotency-Key` header (Stripe's header, and the
IETF httpapi draft's). An endpoint that receives one opens a key scope for the request
(`scope`), and every write the request makes is keyed from it (`for_call`):

- the call the endpoint was asked for, passed on unchanged, keeps the key itself: the
  monolith's `/rpc` routes `runs.add_run` to its local side or to the data service, and
  either side stores the outcome under the caller's key (so a reused key with other
  arguments is refused there, naming the header);
- any other write gets a key derived from the scope's key, the method, the arguments and
  how many identical calls the request made before. A repeat of the request derives the
  same keys, so the next hop recognises it; a repeat that now sends other arguments (a
  Strava import that found new activities since) is another write, not a conflict.

Without a scope a remote write still carries a fresh random key (`fresh`), reused by its
own retries. The scope lives in a context variable, so each greenlet has its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from shims.contract import MethodSpec
from shims.errors import ValidationError
from shims.wire import to_wire

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
# Printable ASCII without spaces, quotes or separators that proxies rewrite: UUIDs, ULIDs,
# base64 and hex all fit.
KEY_PATTERN = rf"[A-Za-z0-9._:+/=~-]{{1,{MAX_LENGTH}}}"
_KEY = re.compile(KEY_PATTERN)


@dataclass
class KeyScope:
    key: str
    forwarded: str | None  # the fingerprint of the call the key itself names, if any
    derived: Counter = field(default_factory=Counter)


_scope: ContextVar[KeyScope | None] = ContextVar("turnout_idempotency", default=None)


def parse(value: str | None) -> str | None:
    """The header's key, None when absent; a 400 naming the header when malformed."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise ValidationError(f"{HEADER} must be 1 to {MAX_LENGTH} characters from A-Z a-z "
                              "0-9 and . _ : + / = ~ - (a UUID fits)", field=HEADER)
    return value


def fingerprint(method: MethodSpec, arguments: Mapping[str, Any]) -> str:
    """What a keyed write asks, so a reused key with other arguments is told apart."""
    return _digest("call", method.qualified_name,
                   json.dumps(to_wire(dict(arguments)), sort_keys=True, separators=(",", ":")))


def scoped(owner: str, key: str) -> str:
    """A client's key within its owner's namespace (one runner's keys never meet another's)."""
    return _digest("owner", owner, key)


def fresh() -> str:
    return uuid.uuid4().hex


def enter(key: str | None, forwarded: str | None = None) -> Token:
    """Opens the request's scope (no scope for None, hiding any outer one: an in-process
    service called from a request must not key its writes from the caller's)."""
    return _scope.set(KeyScope(key, forwarded) if key is not None else None)


def leave(token: Token) -> None:
    _scope.reset(token)


@contextmanager
def scope(key: str | None, forwarded: str | None = None) -> Iterator[None]:
    token = enter(key, forwarded)
    try:
        yield
    finally:
        leave(token)


def for_call(method: MethodSpec, arguments: Mapping[str, Any]) -> str | None:
    """The key of this write within the request's scope, None outside any scope."""
    current = _scope.get()
    if current is None:
        return None
    asked = fingerprint(method, arguments)
    if asked == current.forwarded:
        return current.key
    current.derived[asked] += 1
    return _digest("derived", current.key, asked, str(current.derived[asked]))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
