"""One time budget per incoming request, shared by every remote call it makes.

Timeouts per call do not bound a request: a view that reads twice and writes once waits for
each in turn, and a service behind a socket circus holds open accepts every connection and
answers none. So each request gets one deadline when it arrives (`REQUEST_DEADLINE`, or
less if the caller says so in `X-Turnout-Deadline-Ms`), kept in a context variable (each
greenlet has its own), and:

- remote calls stop a little before it (half a second, or a tenth of a shorter budget),
  leaving the request time to answer by the deadline itself;
- every remote call's connect and read timeouts are capped by what is left of it;
- a call that would start with nothing left is not started (`DeadlineExceeded`: a read
  falls back to local, a write is refused as not applied);
- what is left travels to the next hop in `X-Turnout-Deadline-Ms`, so a service the
  monolith calls gives up on its own calls when the monolith will have stopped waiting;
- `within(seconds)` narrows it for one operation: a read's whole budget, retries included.

Greenlets spawned for a request (the shadow) start with no deadline and keep their own
timeouts. Outside a request (scripts, tests) there is none unless `within` sets one.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

from flask import Flask, g, request

from shims.errors import DeadlineExceeded, ValidationError

HEADER = "X-Turnout-Deadline-Ms"
# Ten seconds: room for one write's full timeout (5 s) and a retry of it, plus the reads
# around it at their one-second budget, yet well inside what clients and proxies wait
# (30-60 s) and gunicorn's 30 s worker timeout, so the caller hears a truthful 503 rather
# than its own timeout.
DEFAULTS = {"REQUEST_DEADLINE": 10.0}
MAX_HEADER_MS = 3_600_000  # an hour: anything longer is a mistake, not a budget
MAX_RESERVE = 0.5  # seconds kept back from remote calls to answer in (a loaded worker needs it)

_expires: ContextVar[float | None] = ContextVar("turnout_deadline", default=None)
_clock = time.monotonic


def remaining() -> float | None:
    """Seconds left (<= 0 once spent), or None when no deadline applies."""
    expires = _expires.get()
    return None if expires is None else expires - _clock()


def check(what: str = "the call") -> None:
    """Refuses to start `what` once the deadline is spent."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"{what} was not started: the request's time budget is spent")


def cap(seconds: float) -> float:
    """`seconds`, or what is left of the deadline if that is less."""
    left = remaining()
    return seconds if left is None else max(0.001, min(seconds, left))


def headers() -> dict[str, str]:
    """The header that hands what is left to the next hop (none without a deadline)."""
    left = remaining()
    return {} if left is None else {HEADER: str(max(0, int(left * 1000)))}


def start(seconds: float, header: str | None = None) -> Token:
    """A new deadline for this request: `seconds`, or the caller's, if sooner; its remote
    calls must end a reserve before it."""
    budget = seconds
    if header is not None:
        budget = min(budget, parse_header(header))
    return _expires.set(_clock() + budget - min(MAX_RESERVE, budget / 10))


def end(token: Token) -> None:
    _expires.reset(token)


class within:  # lower case: used as the function it was, `with deadline.within(1.0):`
    """The deadline narrowed to `seconds` from now for the block (unchanged for None).
    A class, not a generator: every remote read enters one (~1 us less, B9)."""

    def __init__(self, seconds: float | None):
        self._seconds = seconds
        self._token: Token | None = None

    def __enter__(self) -> None:
        if self._seconds is None:
            return
        expires = _clock() + self._seconds
        current = _expires.get()
        self._token = _expires.set(expires if current is None else min(current, expires))

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _expires.reset(self._token)


def parse_header(value: str) -> float:
    """Seconds from `X-Turnout-Deadline-Ms`; a 400 naming the header if it is not a count
    of milliseconds."""
    text = value.strip()
    if not text.isdigit() or int(text) > MAX_HEADER_MS:
        raise ValidationError(f"{HEADER} must be whole milliseconds from 0 to {MAX_HEADER_MS}, "
                              f"got {value[:40]!r}", field=HEADER)
    return int(text) / 1000


def install(app: Flask, seconds: float) -> None:
    """Every request of `app` gets its deadline, dropped after it (an in-process caller,
    such as WsgiTransport, keeps its own). Call it before registering other hooks."""

    def begin() -> None:
        try:
            g.turnout_deadline = start(seconds, request.headers.get(HEADER))
        except ValidationError:
            g.turnout_deadline = start(seconds)  # the 400 is answered within a budget too
            raise

    def finish(_error: BaseException | None) -> None:
        token = g.pop("turnout_deadline", None)
        if token is not None:
            end(token)

    app.before_request(begin)  # install first, so every later hook runs within the budget
    app.teardown_request(finish)
