"""A bounded load generator for the fault tests: many clients over many runners, a mix of
month listings and new runs, every request and every write kept for the assertions.

Each write carries its own `Idempotency-Key`. A client that gets no acknowledgement (a
503 with Retry-After, a 429, a timeout, a dropped connection) may retry the same write
with the same key, as docs/api.md tells clients to, so the tests can prove that such a
retry never creates a duplicate. Every request has a time limit and the loop stops by
itself; nothing here targets anything but the stack's loopback URL.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import requests

PASSWORD = "correct-horse-9"
YEAR, MONTH = 2026, 11
CLIENT_TIMEOUT = 30.0  # far above anything the stack may take: the deadline is checked apart
DEADLINE = float(os.environ.get("TURNOUT_REQUEST_DEADLINE", "10"))
# An answer later than this hung: the deadline bounds the server's work, and the clients here
# (fifty greenlets in the test's own process) add their own queueing to what they measure: on
# a two-core machine at load 8 a write answered at the deadline was measured at 11.03 s.
SLACK = 3.0
LATE = DEADLINE + SLACK
RETRYABLE = (429, 502, 503, 504)
# Ids come from the public API as strings of digits (docs/api.md) and are int() here, as the
# databases hold them.


@dataclass
class Runner:
    email: str
    token: str
    user_id: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Attempt:
    status: int  # 0: no answer (timeout, connection error)
    latency: float
    message: str = ""
    retry_after: str | None = None
    route: str = ""
    run_id: int | None = None


@dataclass
class Write:
    name: str
    key: str
    runner: Runner
    attempts: list[Attempt] = field(default_factory=list)
    run_id: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.run_id is not None


@dataclass
class Traffic:
    """`clients` greenlets, each sending requests for random runners until stopped: `reads`
    of every ten are month listings, the rest new runs. With `retry_refused`, a write that
    was not acknowledged is sent again with its key until it is (bounded by `max_attempts`
    and by the traffic's stop plus `grace` seconds)."""

    url: str
    runners: list[Runner]
    clients: int = 25
    reads: int = 7
    retry_refused: bool = True
    max_attempts: int = 20
    grace: float = 30.0
    seed: int = 8
    writes: list[Write] = field(default_factory=list)
    read_statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    read_retries: int = 0  # reads sent again after a kept-alive connection was dropped
    read_latencies: list[float] = field(default_factory=list)
    _stop_at: float | None = None
    _greenlets: list = field(default_factory=list)

    def __enter__(self) -> Traffic:
        self._greenlets = [gevent.spawn(self._loop, random.Random(self.seed * 1000 + n))
                           for n in range(self.clients)]
        return self

    # Each client has its own session, so its one kept-alive connection is in constant use.
    # Runners' sessions shared between clients would each grow several connections, some
    # left idle past the server's keep-alive, and a request sent on one just as the server
    # closes it is reset: a race of the test's client, not of the stack.

    def __exit__(self, *exc_info) -> None:
        self._stop_at = time.monotonic()
        gevent.joinall(self._greenlets, timeout=self.grace + CLIENT_TIMEOUT + 10)
        assert all(g.dead for g in self._greenlets), "a client never came back"
        for greenlet in self._greenlets:
            if greenlet.exception is not None:
                raise greenlet.exception

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def _loop(self, rng: random.Random) -> None:
        session = requests.Session()
        while not self.stopping:
            runner = rng.choice(self.runners)
            if rng.randrange(10) < self.reads:
                self._read(session, runner)
            else:
                self._write(session, runner)
            gevent.sleep(rng.uniform(0.0, 0.02))

    def _read(self, session: requests.Session, runner: Runner) -> None:
        """A read whose kept-alive connection the server closed as it was sent (a worker
        ending in a graceful reload, or its keep-alive timeout) is sent once more, as HTTP
        clients and browsers do for idempotent requests (RFC 9110 §9.2.2); counted."""
        attempt = self._send(session, runner, "GET", "/api/runs",
                             params={"year": YEAR, "month": MONTH})
        if attempt.status == 0 and "Connection aborted" in attempt.message:
            self.read_retries += 1
            attempt = self._send(session, runner, "GET", "/api/runs",
                                 params={"year": YEAR, "month": MONTH})
        self.read_statuses[attempt.status] += 1
        self.read_latencies.append(attempt.latency)
        if attempt.status != 200:
            self.failures.append(f"read {runner.email}: {attempt.status} {attempt.message}")

    def _write(self, session: requests.Session, runner: Runner) -> None:
        name = f"load-{uuid.uuid4().hex}"
        write = Write(name=name, key=uuid.uuid4().hex, runner=runner)
        self.writes.append(write)
        body = {"name": name, "distance": 5000, "elapsed_time": 1500,
                "start_date": f"{YEAR}-{MONTH:02d}-20T07:00:00"}
        while True:
            attempt = self._send(session, runner, "POST", "/api/runs", json=body,
                                 headers={"Idempotency-Key": write.key})
            write.attempts.append(attempt)
            if attempt.status == 201:
                write.run_id = attempt.run_id
                return
            if attempt.status not in (0, *RETRYABLE):
                self.failures.append(f"write {name}: {attempt.status} {attempt.message}")
                return
            if not self._may_retry(write):
                return
            gevent.sleep(min(2.0, float(attempt.retry_after or 0.2)))

    def _may_retry(self, write: Write) -> bool:
        if not self.retry_refused or len(write.attempts) >= self.max_attempts:
            return False
        return not self.stopping or time.monotonic() < self._stop_at + self.grace

    def _send(self, session: requests.Session, runner: Runner, method: str, path: str, *,
              headers: dict[str, str] | None = None, **options) -> Attempt:
        started = time.monotonic()
        try:
            response = session.request(method, f"{self.url}{path}", timeout=CLIENT_TIMEOUT,
                                       headers={**runner.auth, **(headers or {})}, **options)
        except requests.RequestException as exc:
            attempt = Attempt(0, time.monotonic() - started, repr(exc)[:200])
            self._check_time(method, path, attempt)
            return attempt
        attempt = Attempt(response.status_code, time.monotonic() - started,
                          "" if response.ok else response.text[:300],
                          response.headers.get("Retry-After"),
                          response.headers.get("X-Turnout-Route", ""),
                          int(response.json()["id"]) if response.status_code == 201
                          else None)
        if response.status_code >= 500 and response.status_code not in RETRYABLE:
            self.failures.append(f"{method} {path}: {response.status_code} {attempt.message}")
        self._check_time(method, path, attempt)
        return attempt

    def _check_time(self, method: str, path: str, attempt: Attempt) -> None:
        if attempt.latency > LATE:
            self.slow.append(f"{method} {path}: {attempt.latency:.1f}s ({attempt.status})")

    # --- what happened ---------------------------------------------------------------

    def acknowledged(self) -> dict[str, int]:
        return {w.name: w.run_id for w in self.writes if w.acknowledged}

    def never_acknowledged(self) -> set[str]:
        return {w.name for w in self.writes if not w.acknowledged}

    def refused_not_applied(self) -> set[str]:
        """Writes whose last answer said they were not applied (and were not retried)."""
        return {w.name for w in self.writes if not w.acknowledged and w.attempts
                and w.attempts[-1].status in RETRYABLE
                and "not applied" in w.attempts[-1].message}

    def retried(self) -> list[Write]:
        return [w for w in self.writes if len(w.attempts) > 1]

    def summary(self) -> str:
        statuses = Counter(a.status for w in self.writes for a in w.attempts)
        p50 = statistics.median(self.read_latencies) if self.read_latencies else 0.0
        slowest = max((a.latency for w in self.writes for a in w.attempts), default=0.0)
        return (f"{sum(self.read_statuses.values())} reads {dict(self.read_statuses)} "
                f"({self.read_retries} sent again on a dropped connection), "
                f"{len(self.writes)} writes ({len(self.acknowledged())} acknowledged, "
                f"{len(self.retried())} retried with their key; attempts by status "
                f"{dict(statuses)}); {len(self.failures)} failures, {len(self.slow)} over the "
                f"deadline; reads p50 {p50 * 1000:.0f}ms, slowest write {slowest:.2f}s")

    def assert_served(self) -> None:
        """No 500, no unexpected refusal, nothing slower than the deadline plus a second."""
        assert self.failures == [], f"{len(self.failures)} failures: {self.failures[:5]}"
        assert self.slow == [], f"{len(self.slow)} over the deadline: {self.slow[:5]}"


def sign_up(url: str, count: int) -> list[Runner]:
    """`count` runners signed up at once, each with its bearer token."""

    def one(_index: int) -> Runner:
        email = f"load-{uuid.uuid4().hex[:12]}@example.com"
        created = requests.post(f"{url}/api/users", timeout=CLIENT_TIMEOUT,
                                json={"email": email, "password": PASSWORD})
        assert created.status_code == 201, created.text
        token = requests.post(f"{url}/api/tokens", auth=(email, PASSWORD),
                              timeout=CLIENT_TIMEOUT)
        assert token.status_code == 201, token.text
        return Runner(email, token.json()["token"], user_id=int(created.json()["id"]))

    greenlets = [gevent.spawn(one, index) for index in range(count)]
    gevent.joinall(greenlets, timeout=120, raise_error=True)
    return [g.value for g in greenlets]


# --- what the databases hold (read from the files themselves) ---------------------------

def _read(database: Path, query: str) -> list[tuple]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=15)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def rows_by_name(database: Path) -> Counter:
    """How many `runs` rows carry each load name: (name, id) -> count and name -> count."""
    found = Counter()
    for name, run_id in _read(database, "SELECT name, id FROM runs WHERE name LIKE 'load-%'"):
        found[(name, run_id)] += 1
        found[name] += 1
    return found


def holds_each_once(database: Path, acknowledged: dict[str, int]) -> list[str]:
    """Problems: acknowledged writes missing (under their id) or written more than once."""
    found = rows_by_name(database)
    missing = [n for n, i in acknowledged.items() if found[(n, i)] != 1]
    twice = [n for n in acknowledged if found[n] > 1]
    problems = []
    if missing:
        problems.append(f"{database.name}: {len(missing)} of {len(acknowledged)} acknowledged "
                        f"writes missing, e.g. {missing[:3]}")
    if twice:
        problems.append(f"{database.name}: {len(twice)} written twice, e.g. {twice[:3]}")
    return problems


def applied_at_most_once(database: Path, names: set[str]) -> list[str]:
    found = rows_by_name(database)
    twice = [n for n in names if found[n] > 1]
    return [f"{database.name}: {len(twice)} unacknowledged writes applied twice, "
            f"e.g. {twice[:3]}"] if twice else []


def outbox_pending(database: Path) -> int:
    return _read(database, "SELECT count(*) FROM turnout_outbox WHERE pending")[0][0]


def applied_nowhere(databases: list[Path], names: set[str]) -> list[str]:
    found = Counter()
    for database in databases:
        found.update({n: c for n, c in rows_by_name(database).items() if isinstance(n, str)})
    applied = [n for n in names if found[n]]
    return [f"{len(applied)} writes refused as 'not applied' were applied, e.g. "
            f"{applied[:3]}"] if applied else []
