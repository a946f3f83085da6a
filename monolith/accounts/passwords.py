"""Password hashing that never stalls the event loop, and the same cost for unknown emails.

scrypt takes ~100 ms of CPU. On a gevent worker that CPU would run on the loop and every
other greenlet (health checks, other runners' pages) would wait behind it: four concurrent
wrong passwords once held /healthz for most of a second. hashlib's scrypt and PBKDF2
release the GIL, so a hash run on a real OS thread leaves the loop free; in a process
gevent has not patched (a script, a plain WSGI server) the hash is simply called.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from werkzeug.security import check_password_hash, generate_password_hash

from shims.transactions import holds_sqlite_write_lock

T = TypeVar("T")
# As many threads as cores: hashing cannot go faster than the cores allow, and more
# threads would only crowd out the loop's own thread when a storm of logins arrives.
POOL_SIZE = os.cpu_count() or 2
# The hashing threads run at the loop's own priority: at nice +10 the loop won every tie (B11
# 1.1x instead of 15.9x), but on a busy machine every other process won too and hashes starved
# (the fault tests' sign-ups timed out after 20 s at load 10). The pool alone frees the loop.
_DUMMY_PASSWORD = "not-a-real-password"  # nosec B105 - hashed, compared, never accepted
_dummy_hashes: dict[str, str] = {}
_pool: Any = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def hash_password(password: str, method: str) -> str:
    return off_the_loop(generate_password_hash, password, method)


def check_password(stored: str | None, password: str, method: str) -> bool:
    """True when `password` matches `stored`. For an unknown account (`stored` None) a
    hash made with the same method and parameters is checked instead, so the answer takes
    as long as for a known one, and is always False."""
    if stored is None:
        off_the_loop(check_password_hash, dummy_hash(method), password)
        return False
    return off_the_loop(check_password_hash, stored, password)


def dummy_hash(method: str) -> str:
    """Computed on first use, not at import (no work at import time); a race makes it
    twice, which is harmless."""
    if method not in _dummy_hashes:
        _dummy_hashes[method] = off_the_loop(generate_password_hash, _DUMMY_PASSWORD, method)
    return _dummy_hashes[method]


def off_the_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a worker thread when gevent runs this process, else directly.

    Directly, too, inside a keyed write on SQLite (a sign-up with an Idempotency-Key): its
    transaction holds the write lock, and yielding with it held would let another greenlet
    stall the loop in SQLite's busy wait (shims.transactions.holds_sqlite_write_lock). Such
    a hash still blocks the loop for its ~100 ms, as every hash once did; sign-ups are rare,
    logins (authenticate, a read) never hold the lock."""
    pool = _gevent_pool()
    if pool is None or holds_sqlite_write_lock():
        return function(*args)
    return pool.apply(function, args)


def _gevent_pool() -> Any:
    """Hashing's own thread pool (not the hub's, which also resolves DNS: a login storm
    must not delay name lookups), made per process: a forked worker starts its own."""
    global _pool, _pool_pid
    try:
        from gevent import monkey
    except ImportError:  # gevent is the kit's dependency, but a script may run without it
        return None
    if not monkey.is_module_patched("threading"):
        return None
    if _pool_pid != os.getpid():
        with _pool_lock:
            if _pool_pid != os.getpid():
                from gevent.threadpool import ThreadPool

                _pool, _pool_pid = ThreadPool(POOL_SIZE), os.getpid()
    return _pool
