"""Issue 8: the documented migration path walked under load, and the faults a team meets on
the way, each under 25 clients writing and reading for 50 runners (tests/integration/
traffic.py), each checking every acknowledged write on every side that the stage says
holds it, from the database files themselves.

Asserted by every test here: every acknowledged write exists exactly once on each side
that holds the data; a write the client retried with its Idempotency-Key exists once;
no 500; no request slower than its deadline plus one second. The tests share one stack
(module scope); each leaves the runs feature in `local` with both sides drained.
"""

from __future__ import annotations

import os
import signal
import time

import gevent
import pytest
from support import eventually
from traffic import (Traffic, applied_at_most_once, applied_nowhere, holds_each_once,
                     outbox_pending, sign_up)

pytestmark = pytest.mark.integration

CLIENTS, RUNNERS = 25, 50
STACK_ENV = {"TURNOUT_MONOLITH_WORKERS": "2"}


def move(stack, mode: str, *percent: str) -> float:
    """`turnout flags set runs ...` as an operator runs it; returns how long it took."""
    started = time.monotonic()
    extra = ["--percent", percent[0]] if percent else []
    done = stack.turnout("flags", "set", "runs", mode, *extra, "--wait", "60", check=False)
    assert done.returncode == 0, f"flags set runs {mode}: {done.stdout}{done.stderr}"
    return time.monotonic() - started


def data(stack, action: str, *args: str) -> str:
    done = stack.turnout("data", action, "runs", *args, check=False)
    assert done.returncode == 0, f"data {action}: exit {done.returncode}\n{done.stdout}" \
                                 f"{done.stderr}"
    return done.stdout


INCIDENTS = ("WORKER TIMEOUT", "Booting worker", "Worker exiting", "Traceback",
             "mirror_stalled", "mirror_change_refused", "breaker_open", "database is locked")


def incidents(stack) -> dict[str, dict[str, int]]:
    """What the processes' logs say went wrong, counted per process: printed with every
    result, so a failure shows why (a worker killed for a timeout resets its connections)."""
    found = {}
    for log in sorted((stack.run_dir / "logs").glob("*.log")):
        text = log.read_text(errors="replace")
        counts = {word: text.count(word) for word in INCIDENTS if word in text}
        if counts:
            found[log.stem] = counts
    return found


def databases(stack):
    return stack.run_dir / "monolith.db", stack.run_dir / "dataservice.db"


def drained(stack) -> None:
    """Both outboxes empty: every change has reached the other side (stage permitting)."""
    monolith, service = databases(stack)
    eventually(lambda: outbox_pending(monolith) == 0 and outbox_pending(service) == 0,
               "both outboxes drain", 60)


def assert_held(stack, traffic: Traffic, *holders) -> None:
    acknowledged = traffic.acknowledged()
    problems = [p for database in holders for p in holds_each_once(database, acknowledged)]
    unacknowledged = traffic.never_acknowledged()
    problems += [p for database in databases(stack)
                 for p in applied_at_most_once(database, unacknowledged)]
    assert problems == [], f"{problems}\n{traffic.summary()}"


def back_to_local(stack) -> None:
    """Leave the stack as the next test expects it: runs local, both sides equal."""
    move(stack, "dualwrite")
    drained(stack)
    data(stack, "verify")
    move(stack, "local")


# The documented path (docs/turnout.md §4), forward and back.
WALK = (("dualwrite",), "copy", "verify", ("shadow",), ("canary", "10"), ("canary", "50"),
        ("remote",), ("rampdown",), ("local",))


# Twice: the second walk starts from what the first left behind (outboxes, idempotency keys,
# both databases), which is what a team that walks back and forth for weeks lives with. (A
# third added five minutes to CI and found nothing the second does not.) 14 stage moves, each
# a `turnout` command that waits (bounded) for the mirror: on a busy machine the walk may
# outlast pytest's default 300 s, while every wait inside it stays bounded.
WALKS = 2


@pytest.mark.timeout(1200)
def test_the_migration_walk_forward_and_back_twice_under_load(stack):
    url = stack.monolith
    runners = sign_up(url, RUNNERS)
    took: list[str] = []
    with Traffic(url, runners, clients=CLIENTS) as traffic:
        gevent.sleep(1)
        for cycle in range(WALKS):
            for step in WALK:
                if step == "copy":
                    data(stack, "copy")
                elif step == "verify":
                    data(stack, "verify")
                else:
                    took.append(f"{cycle}:{'/'.join(step)} {move(stack, *step):.1f}s")
                gevent.sleep(0.5)
            # Back in local: the monolith holds every write acknowledged in any stage.
            assert_held(stack, traffic, databases(stack)[0])
    print(f"\nwalk: {traffic.summary()}\nmoves: {', '.join(took)}\n{incidents(stack)}")
    traffic.assert_served()
    assert len(traffic.acknowledged()) > 300
    monolith, service = databases(stack)
    assert_held(stack, traffic, monolith)
    move(stack, "dualwrite")  # the service catches up from the outbox
    drained(stack)
    assert_held(stack, traffic, monolith, service)
    back_to_local(stack)


def test_copy_twice_under_load_in_dualwrite(stack):
    """The second copy runs over what the first copied while writes go on (the copy is
    idempotent); each copy is followed by a verify at the end."""
    url = stack.monolith
    move(stack, "dualwrite")
    runners = sign_up(url, RUNNERS)
    copies = []
    with Traffic(url, runners, clients=CLIENTS) as traffic:
        gevent.sleep(1)
        for _ in range(2):
            copies.append(data(stack, "copy").splitlines()[-3])
            gevent.sleep(1)
    print(f"\ncopies: {copies}\n{traffic.summary()}\n{incidents(stack)}")
    traffic.assert_served()
    drained(stack)
    assert_held(stack, traffic, *databases(stack))
    data(stack, "verify")
    back_to_local(stack)


def kill_in_a_loop(stack, seconds: float) -> int:
    """SIGKILL the data service's processes, then every incarnation circus starts, for
    `seconds`: a crash loop. Returns how many processes were killed."""
    killed: set[int] = set()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for pid in set(stack.watcher_pids("dataservice")) - killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        gevent.sleep(0.2)
    return len(killed)


def healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("stage", ["remote", "dualwrite"])
def test_the_data_service_killed_once_then_crash_looping(stack, stage):
    """In `remote` the service is the only holder: a write it may have applied before dying
    is retried by the client with its key, and the service answers the first outcome. In
    `dualwrite` the monolith answers and the service catches up from the outbox.

    Most clients retry every unacknowledged write with its key until it is acknowledged;
    five never retry, so that the writes refused as "not applied" can be checked absent."""
    url, service_url = stack.monolith, stack.url("TURNOUT_DATASERVICE_PORT")
    move(stack, "dualwrite")
    runners = sign_up(url, RUNNERS)
    drained(stack)
    for step in (("shadow",), ("canary", "50"), ("remote",)) if stage == "remote" else ():
        move(stack, *step)
    with Traffic(url, runners, clients=CLIENTS - 5) as traffic, \
            Traffic(url, runners, clients=5, retry_refused=False, seed=9) as once_only:
        gevent.sleep(2)
        once = kill_in_a_loop(stack, 0.1)  # one kill: circus respawns it
        eventually(lambda: healthy(service_url), "the data service is back", 60)
        gevent.sleep(2)
        looped = kill_in_a_loop(stack, 12)  # a crash loop, past the breaker's opening
        eventually(lambda: healthy(service_url), "the data service is back", 60)
        gevent.sleep(5)
    print(f"\n{stage}: killed {once} then {looped} processes; retrying clients: "
          f"{traffic.summary()}\nclients that never retry: {once_only.summary()}\n"
          f"{incidents(stack)}")
    traffic.assert_served()
    assert once_only.failures == [] and once_only.slow == [], once_only.summary()
    assert traffic.never_acknowledged() == set(), "a write was never acknowledged"
    monolith, service = databases(stack)
    if stage == "remote":
        assert_held(stack, traffic, service)
        assert_held(stack, once_only, service)
        move(stack, "rampdown")  # the service's writes come home before the monolith answers
    drained(stack)
    assert_held(stack, traffic, monolith, service)
    assert_held(stack, once_only, monolith, service)
    assert applied_nowhere(list(databases(stack)), once_only.refused_not_applied()) == []
    back_to_local(stack)


RELOADED = ("monolith", "dataservice", "tokendealer", "stravaimport", "reports")


def test_every_process_reloaded_under_load_in_canary(stack):
    """`circusctl reload` of each watcher, one after the other, with runs in canary 50 (both
    sides authoritative, both outboxes draining) and reports on its service."""
    url = stack.monolith
    move(stack, "dualwrite")
    runners = sign_up(url, RUNNERS)
    drained(stack)
    move(stack, "shadow")
    move(stack, "canary", "50")
    stack.turnout("flags", "set", "reports", "remote")
    took = {}
    with Traffic(url, runners, clients=CLIENTS) as traffic:
        gevent.sleep(2)
        for watcher in RELOADED:
            old = set(stack.watcher_pids(watcher))
            started = time.monotonic()
            stack.circusctl("reload", watcher)
            eventually(lambda w=watcher, o=old: stack.circusctl("status", w).strip() == "active"
                       and not o & set(stack.watcher_pids(w)), f"{watcher} reloaded", 60)
            took[watcher] = round(time.monotonic() - started, 1)
            gevent.sleep(1)
    print(f"\nreloads took {took}s; {traffic.summary()}\n{incidents(stack)}")
    traffic.assert_served()
    assert traffic.never_acknowledged() == set()
    drained(stack)
    assert_held(stack, traffic, *databases(stack))
    stack.turnout("flags", "set", "reports", "local")
    back_to_local(stack)
