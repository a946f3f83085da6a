"""Issue 8 on a real stack: clients that send every write with an Idempotency-Key and retry
each non-2xx answer with the same key, while the data service is SIGKILLed in a crash loop
with `runs` in `remote` (the service alone holds the runs).

Before idempotent writes, 39 of 39 writes answered "503 ... it was not retried" had been
stored: a client retrying after the 503 made duplicates. Asserted here:
- every acknowledged write is in dataservice.db exactly once, under the id acknowledged
  (however many times the client sent it, and whatever the service applied from its
  socket's backlog after coming back);
- a write answered 503 "not applied" is in neither database, and one answered 503
  "outcome unknown" is there at most once (a fifth of the clients send each write once
  and take its answer as final; the others retry every write to the end);
- no answer is a 500, every write answer is 201 or 503 with Retry-After, every read 200;
- no request takes longer than the request deadline plus one second (the stack runs the
  default TURNOUT_REQUEST_DEADLINE, 10 s), where the service's 5 s read timeout used to be
  paid once per call.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import gevent
import pytest
import requests
from scraped_metrics import runs_breaker
from support import api_id, eventually
from traffic import DEADLINE, LATE
from test_faults import (CLIENT_TIMEOUT, MONTH, YEAR, Runner, assert_each_once, dual_writes,
                         healthy, rows_named, set_flags, sign_up)

pytestmark = pytest.mark.integration

CLIENTS = 30
READ_TIMEOUT = 5.0  # TURNOUT_REMOTE_READ_TIMEOUT, the default
GIVE_UP = 120.0  # how long a client keeps retrying one write: far beyond the outage
MAX_RETRY_WAIT = 2.0  # a client honours Retry-After, up to this (the test's patience)


@dataclass
class Answer:
    status: int  # 0: no answer at all (the client's own timeout, a dropped connection)
    error: str  # the JSON error code, or what went wrong without an answer
    seconds: float
    retry_after: str | None = None


@dataclass
class KeyedWrite:
    name: str
    key: str
    answers: list[Answer] = field(default_factory=list)
    run_id: int | None = None
    final: bool = False  # its client sends it once and takes a 503 as the last word


@dataclass
class KeyedClients:
    """One greenlet per runner: each write gets a new key and is sent until acknowledged,
    retrying every non-2xx answer with the same key after its Retry-After; between writes,
    the runner reads its month. Runners whose index is a multiple of 5 send each write once
    instead, so they keep starting new writes through the outage."""

    url: str
    runners: list[Runner]
    writes: list[KeyedWrite] = field(default_factory=list)
    reads: list[Answer] = field(default_factory=list)
    _stop: bool = False
    _greenlets: list = field(default_factory=list)

    def __enter__(self) -> KeyedClients:
        self._greenlets = [gevent.spawn(self._loop, runner, index % 5 == 0)
                           for index, runner in enumerate(self.runners)]
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop = True  # no new writes; the ones in flight are retried to the end
        gevent.joinall(self._greenlets, timeout=GIVE_UP + CLIENT_TIMEOUT + 10)
        assert all(g.dead for g in self._greenlets), "a client never came back"

    def _loop(self, runner: Runner, once: bool) -> None:
        while not self._stop:
            write = KeyedWrite(f"fault-idem-{uuid.uuid4().hex}", str(uuid.uuid4()), final=once)
            self.writes.append(write)
            self._send_until_acknowledged(runner, write)
            self._read(runner)
            gevent.sleep(0.01)

    def _send_until_acknowledged(self, runner: Runner, write: KeyedWrite) -> None:
        body = {"name": write.name, "distance": 5000, "elapsed_time": 1500,
                "start_date": f"{YEAR}-{MONTH:02d}-21T07:00:00"}
        give_up = time.monotonic() + GIVE_UP
        while time.monotonic() < give_up:
            started = time.monotonic()
            try:
                response = runner.session.post(f"{self.url}/api/runs", json=body,
                                               timeout=CLIENT_TIMEOUT,
                                               headers={"Idempotency-Key": write.key})
            except requests.RequestException as exc:
                write.answers.append(Answer(0, type(exc).__name__, time.monotonic() - started))
                gevent.sleep(0.5)
                continue
            answer = Answer(response.status_code, _error_code(response),
                            time.monotonic() - started, response.headers.get("Retry-After"))
            write.answers.append(answer)
            if response.status_code == 201:
                write.run_id = api_id(response.json()["id"])
                return
            if write.final:
                return
            gevent.sleep(min(float(answer.retry_after or 0.5), MAX_RETRY_WAIT))

    def _read(self, runner: Runner) -> None:
        started = time.monotonic()
        try:
            response = runner.session.get(f"{self.url}/api/runs", timeout=CLIENT_TIMEOUT,
                                          params={"year": YEAR, "month": MONTH})
        except requests.RequestException as exc:
            self.reads.append(Answer(0, type(exc).__name__, time.monotonic() - started))
            return
        self.reads.append(Answer(response.status_code, _error_code(response),
                                 time.monotonic() - started))

    def unknown_then_acknowledged(self) -> list[KeyedWrite]:
        """Writes the stack may have applied before it could say so, retried to the end."""
        return [w for w in self.writes if w.run_id is not None
                and any(a.error == "outcome_unknown" or a.status == 0 for a in w.answers)]

    def summary(self) -> str:
        answers = [a for w in self.writes for a in w.answers]
        by_status = Counter(f"{a.status} {a.error}".strip() for a in answers)
        resent = sum(1 for w in self.writes if len(w.answers) > 1)
        sent_once = Counter(w.answers[-1].error or w.answers[-1].status
                            for w in self.writes if w.final)
        return (f"{len(self.writes)} writes, {len(answers)} sends {dict(by_status)}; "
                f"{resent} writes sent more than once, {len(self.unknown_then_acknowledged())} "
                f"acknowledged after an unknown outcome; sent once: {dict(sent_once)}; "
                f"{len(self.reads)} reads "
                f"{dict(Counter(a.status for a in self.reads))}; slowest write answer "
                f"{max((a.seconds for a in answers), default=0):.2f}s, slowest read "
                f"{max((a.seconds for a in self.reads), default=0):.2f}s")


def _error_code(response: requests.Response) -> str:
    if response.status_code < 400:
        return ""
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return "not json"


def test_keyed_writes_retried_through_a_crash_looping_service_are_stored_exactly_once(stack):
    url, service = stack.monolith, stack.url("TURNOUT_DATASERVICE_PORT")
    dual_writes(stack)
    runners = sign_up(url, CLIENTS)  # on both sides, so logins work from either
    set_flags(stack, ("runs", "remote"))
    with KeyedClients(url, runners) as clients:
        gevent.sleep(3)
        killed: set[int] = set()
        down_at, opened_at = time.monotonic(), None
        # Circus respawns a killed service within ~2 s; killing every new incarnation too
        # keeps it down until writes have waited out deadlines and the breaker has been open
        # a while (new writes are then refused unsent: "not applied").
        while (opened_at is None or time.monotonic() - opened_at < 4
               or time.monotonic() - down_at < DEADLINE + 4):
            assert time.monotonic() - down_at < 60, "the runs breaker never opened"
            for pid in set(stack.watcher_pids("dataservice")) - killed:
                os.kill(pid, signal.SIGKILL)  # only processes of our own circusd
                killed.add(pid)
            if opened_at is None and runs_breaker(url) == "open":
                opened_at = time.monotonic()
            gevent.sleep(0.2)
        eventually(lambda: healthy(service) and not killed & set(
            stack.watcher_pids("dataservice")), "circus respawns the data service", 60)
        eventually(lambda: runs_breaker(url) == "closed", "the runs breaker closes", 30)
        gevent.sleep(3)
    print(f"\nkilled {len(killed)} data service processes; {clients.summary()}")

    answers = [a for w in clients.writes for a in w.answers]
    assert len(clients.writes) > 100, clients.summary()
    assert [a for a in answers + clients.reads if a.status == 500] == [], "a 500"
    assert [a for a in answers if a.status not in (201, 503)] == [], clients.summary()
    assert [a for a in answers if a.status == 503 and not a.retry_after] == []
    assert [a for a in clients.reads if a.status != 200] == [], clients.summary()
    slow = [a for a in answers + clients.reads if a.seconds > LATE]
    assert slow == [], f"{len(slow)} answers later than the deadline + 3 s: {slow[:3]}"
    assert any(a.status == 503 for a in answers), "no write met the outage"
    assert clients.unknown_then_acknowledged(), "no write with an unknown outcome was retried"

    acknowledged = {w.name: w.run_id for w in clients.writes if w.run_id is not None}
    unfinished = [w for w in clients.writes if w.run_id is None and not w.final]
    assert unfinished == [], f"writes never acknowledged: {unfinished[:3]}"
    assert_each_once(stack, "dataservice.db", acknowledged)
    refused = {w.name for w in clients.writes if w.final and w.answers[-1].error == "unavailable"}
    unknown = {w.name for w in clients.writes if w.final and w.run_id is None} - refused
    assert refused, "no write was refused 'not applied'"
    stored = rows_named(stack, "dataservice.db", refused | unknown)
    assert [n for n in refused if stored[n]] == [], "a write answered 'not applied' was applied"
    assert all(stored[n] <= 1 for n in unknown), "a write of unknown outcome was applied twice"
    assert not rows_named(stack, "monolith.db", set(acknowledged) | refused | unknown), \
        "in remote mode the monolith stores no run"
