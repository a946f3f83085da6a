"""A circuit breaker per feature: stop calling a failing service, probe it, come back.

Why not pybreaker: its `call()` holds one lock for the whole wrapped call
(danielfm/pybreaker#3, #57, #77), so under gevent every remote call of a feature
would queue behind the one in flight. This breaker only keeps state; the
router asks `allow()` before a call and reports the outcome after it, so calls
run concurrently. No method here does I/O, so a greenlet is never switched out
half-way through a state change; the lock only matters under real threads.

States: closed (calls flow; `failure_threshold` consecutive transport failures
open it), open (calls refused for `reset_timeout` seconds), half-open (one trial
call at a time; success closes, failure opens again). A trial whose outcome is never
reported (the call was interrupted) is presumed lost after `reset_timeout`, and another
trial may go, so the breaker cannot stay half-open for ever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    def __init__(self, name: str, *, failure_threshold: int = 5, reset_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, str, str], None] | None = None):
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.name = name
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._trial_started_at = 0.0

    @property
    def state(self) -> str:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def allow(self) -> bool:
        """May a call go to the protected side now? In half-open, only one trial may."""
        with self._lock:
            self._maybe_half_open()
            if self._state == CLOSED:
                return True
            if self._state == HALF_OPEN and (
                    not self._trial_in_flight
                    or self._clock() >= self._trial_started_at + self._reset_timeout):
                self._trial_in_flight = True
                self._trial_started_at = self._clock()
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            if self._state != CLOSED:
                self._move(CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._trial_in_flight = False
            self._failures += 1
            if self._state == HALF_OPEN or (self._state == CLOSED
                                            and self._failures >= self._threshold):
                self._opened_at = self._clock()
                self._move(OPEN)

    def retry_after(self) -> float:
        """Seconds until the next trial call is allowed (0 when closed)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._reset_timeout - self._clock())

    def _maybe_half_open(self) -> None:
        if self._state == OPEN and self._clock() >= self._opened_at + self._reset_timeout:
            self._move(HALF_OPEN)

    def _move(self, new_state: str) -> None:
        old_state, self._state = self._state, new_state
        if new_state == OPEN:
            self._trial_in_flight = False
        if self._on_change is not None:
            self._on_change(self.name, old_state, new_state)
