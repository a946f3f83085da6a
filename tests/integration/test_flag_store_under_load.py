"""Issue 8: the flag store's file damaged and restored under load, on the whole stack.

50 runners (one client each) against the monolith under circusd, runs in `rampdown` and
reports `remote` (modes other than the `local` default, so "kept its modes" shows), while
the file `flags.db` every worker reads is, in turn:

1. overwritten with garbage (`cp garbage flags.db`: the same file every worker has open);
2. restored by copy from a backup of the same version (`cp backup flags.db`);
3. then, after one more change, truncated to 0 bytes;
4. restored by rename from that backup, now older than what the workers serve
   (`mv backup flags.db`);
5. and the kill switch pulled with `turnout flags kill`, the way an operator would, then
   released with `turnout flags unkill`.

Asserted: after each fault every worker reports `store_readable: false` within a bounded
time and keeps its modes; after each restore every worker reads the store again (its
`store_version` is the restored file's), never serving an older version than before (a
watcher samples every worker's /healthz throughout); the kill reaches every worker within
2 s of the command; no request fails, with one exception the kill switch makes by design
(docs/turnout.md §4): a run written while killed is written locally only, so once the kill
is released and `rampdown` reads from the data service again, its runner's read of it is a
404. Those reads are counted and must name runs written locally; any other failure fails
the test. Counts are printed, and named on failure.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field

import gevent
import pytest
import requests
from scraped_metrics import metric
from test_faults import Load, dual_writes, log_events, set_flags, sign_up

pytestmark = pytest.mark.integration

RUNNERS = 50
WORKERS = 2  # TURNOUT_MONOLITH_WORKERS in tests/integration/conftest.py
NOTICED_WITHIN = 10.0  # generous: a worker looks every 0.25 s; the machine may be busy
KILL_WITHIN = 2.0  # the bound, from the moment `turnout flags kill` returns
MODES = {"runs": "rampdown", "reports": "remote"}


@dataclass
class Sample:
    sent: float  # time.monotonic() when asked
    received: float  # ... and when answered: the worker served this somewhere in between
    pid: int
    flags: dict


@dataclass
class Watcher:
    """Asks every monolith worker's /healthz, over and over, from a few greenlets (a new
    connection each time, so both workers answer), and keeps every answer with when it was
    asked and answered: what each worker served, and from when to when."""

    url: str
    greenlets: int = 6  # many answers: the first after a change comes soon, even under load
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: bool = False
    _running: list = field(default_factory=list)

    def __enter__(self) -> Watcher:
        self._running = [gevent.spawn(self._loop) for _ in range(self.greenlets)]
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop = True
        gevent.joinall(self._running, timeout=10)

    def _loop(self) -> None:
        while not self._stop:
            sent = time.monotonic()
            try:
                body = requests.get(f"{self.url}/healthz", timeout=5,
                                    headers={"Connection": "close"}).json()
                self.samples.append(Sample(sent, time.monotonic(), body["pid"], body["flags"]))
            except (requests.RequestException, ValueError) as exc:
                self.errors.append(repr(exc))
            gevent.sleep(0.02)

    def every_worker(self, check, what: str, since: float, within: float) -> float:
        """Waits until each worker answered, to a question asked after `since`, with flags
        that pass `check`; returns when the last of them had answered so, after `since`
        (an upper bound on when the last worker got there). Fails after `within` s."""
        deadline = since + within
        while True:
            first = {}
            for sample in self.samples:
                if sample.sent >= since and sample.pid not in first and check(sample.flags):
                    first[sample.pid] = sample.received
            if len(first) == WORKERS:
                return max(first.values()) - since
            if time.monotonic() > deadline:
                latest = {s.pid: s.flags for s in self.samples}
                pytest.fail(f"not within {within:.0f}s: every worker {what}; workers there: "
                            f"{sorted(first)}; latest answers: {latest}")
            gevent.sleep(0.05)

    def between(self, start: float, end: float) -> list[Sample]:
        """Answers to questions asked and answered within [start, end]."""
        return [s for s in self.samples if s.sent >= start and s.received <= end]

    def went_backwards(self) -> list[str]:
        """An answer that shows an older version than one its worker gave before it was
        asked (answered before the other was asked: the order is certain)."""
        found = []
        by_pid = defaultdict(list)
        for sample in self.samples:
            by_pid[sample.pid].append(sample)
        for pid, seen in by_pid.items():
            for earlier in seen:
                for later in seen:
                    if later.sent > earlier.received and \
                            later.flags["version"] < earlier.flags["version"]:
                        found.append(f"worker {pid}: {earlier.flags['version']} -> "
                                     f"{later.flags['version']}")
        return found


def keeps_modes(view: dict) -> bool:
    return all(view["modes"][feature] == mode for feature, mode in MODES.items())


def says(view: dict, words: str) -> bool:
    return words in (view["store_problem"] or "")


def readable_gauge(url: str) -> float:
    """`turnout_flag_store_readable`, the worst live worker (a gauge without labels)."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("turnout_flag_store_readable "):
            return float(line.split()[1])
    return -1.0


def backup(flags_db, to):
    """A consistent copy, as `sqlite3 flags.db ".backup TO"` makes it."""
    source, target = sqlite3.connect(flags_db, timeout=15), sqlite3.connect(to)
    source.backup(target)
    target.close()
    source.close()
    return to


def stored_version(path) -> int:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT version FROM turnout_state").fetchone()[0]
    finally:
        connection.close()


def test_the_flag_store_damaged_and_restored_under_load_fails_no_request(stack):
    url, flags_db = stack.monolith, stack.run_dir / "flags.db"
    dual_writes(stack)
    runners = sign_up(url, RUNNERS)
    set_flags(stack, *MODES.items())
    took: dict[str, float] = {}
    faulty: list[tuple[float, float]] = []  # while the file was damaged
    with Watcher(url) as watcher, Load(url, runners) as load:
        gevent.sleep(2)
        watcher.every_worker(lambda v: keeps_modes(v) and v["store_readable"],
                             "serves the modes set", time.monotonic(), NOTICED_WITHIN)
        copy = backup(flags_db, stack.run_dir / "backup.db")
        copied_version = stored_version(copy)
        assert {s.flags["version"] for s in watcher.samples[-8:]} == {copied_version}

        # 1. garbage over the live file, in place
        garbage = stack.run_dir / "garbage.bin"
        garbage.write_bytes(os.urandom(flags_db.stat().st_size))
        damaged_at = time.monotonic()
        shutil.copyfile(garbage, flags_db)
        took["garbage noticed"] = watcher.every_worker(
            lambda v: not v["store_readable"] and says(v, "not a SQLite database"),
            "reports the garbage", damaged_at, NOTICED_WITHIN)
        assert readable_gauge(url) == 0

        # 2. restored by copy, the same version
        restored_at = time.monotonic()
        shutil.copyfile(copy, flags_db)
        faulty.append((damaged_at, restored_at))
        took["copy read again"] = watcher.every_worker(
            lambda v: v["store_readable"] and v["store_version"] == copied_version,
            "reads the restored copy", restored_at, NOTICED_WITHIN)
        assert readable_gauge(url) == 1

        # 3. one more change, then the file truncated
        set_flags(stack, *MODES.items())
        newer = stored_version(flags_db)
        assert newer > copied_version
        watcher.every_worker(lambda v: v["version"] == newer, "serves the change",
                             time.monotonic(), NOTICED_WITHIN)
        damaged_at = time.monotonic()
        os.truncate(flags_db, 0)
        took["truncation noticed"] = watcher.every_worker(
            lambda v: not v["store_readable"] and says(v, "empty (0 bytes)"),
            "reports the truncation", damaged_at, NOTICED_WITHIN)

        # 4. restored by rename, from the older backup
        restored_at = time.monotonic()
        os.replace(copy, flags_db)
        faulty.append((damaged_at, restored_at))
        took["rename read again"] = watcher.every_worker(
            lambda v: v["store_version"] == copied_version and v["version"] == newer
            and says(v, "older than version"),
            "reads the renamed, older backup and keeps its newer version", restored_at,
            NOTICED_WITHIN)

        # 5. the kill switch, as an operator pulls it, and released
        killed = stack.turnout("flags", "kill", check=False)
        killed_at = time.monotonic()
        assert killed.returncode == 0, killed.stderr
        assert "restored from an older copy" in killed.stdout  # it says what unkill brings
        took["kill reached every worker"] = watcher.every_worker(
            lambda v: v["killed"] and v["store_readable"], "serves the kill", killed_at,
            NOTICED_WITHIN)
        released = stack.turnout("flags", "unkill", check=False)
        assert released.returncode == 0, released.stderr
        took["unkill reached every worker"] = watcher.every_worker(
            lambda v: not v["killed"] and keeps_modes(v), "serves the unkill",
            time.monotonic(), NOTICED_WITHIN)
        gevent.sleep(1)
    took = {what: round(seconds, 2) for what, seconds in took.items()}
    print(f"\nflag store faults: {took}; {len(watcher.samples)} /healthz answers, "
          f"{len(watcher.errors)} failed; {load.summary()}\nroutes: {dict(load.routes)}")

    during = [s for start, end in faulty for s in watcher.between(start, end)]
    assert during and all(keeps_modes(s.flags) for s in during), \
        [s.flags for s in during if not keeps_modes(s.flags)][:3]
    assert took["kill reached every worker"] <= KILL_WITHIN, took
    written_while_killed = {w.run_id for w in load.writes
                            if w.run_id and "runs.add_run=local" in w.route}
    expected = {f"get /api/runs/{run}: 404" for run in written_while_killed}
    failed = [f for f in load.failures if f.split(" {", 1)[0] not in expected]
    print(f"{len(written_while_killed)} runs written while killed, read as 404 "
          f"{len(load.failures) - len(failed)} times after the unkill")
    assert failed == [], f"{len(failed)} failed: {failed[:5]}"
    assert load.requests_made > 300, load.summary()  # the load ran throughout
    assert watcher.errors == [], watcher.errors[:5]
    assert watcher.went_backwards() == [], watcher.went_backwards()[:5]
    unreadable = log_events(stack, "flag_store_unreadable")
    assert {line["reason"] for line in unreadable} >= {"not_a_database", "truncated"}, \
        [line["reason"] for line in unreadable]
    assert len(log_events(stack, "flag_store_version_backwards")) >= WORKERS
    assert metric(url, "turnout_flag_store_problems_total", reason="version_backwards") >= \
        WORKERS
