"""The rollback guard on a real stack under circusd (issue 11): Runnerly's `reports` feature
in `live` under load, the evidence flowing from both monolith workers into the flag store,
one guard elected among them.

- Healthy: the reports service answers, the guard has the evidence to judge (remote calls,
  no errors) and leaves the feature where it is, for more than two windows.
- Broken: the reports service's processes are stopped (SIGSTOP: a hung service behind the
  socket circus keeps open; each read waits its one-second budget, then the breaker opens).
  The guard moves `reports` back one stage, to canary 50 %, after the breach has held for
  its window: once, with an audit entry by `turnout-guard` that gives the numbers, one
  count in `turnout_guard_rollbacks_total` and one `guard_rolled_back` log line; the fault
  then goes on for another window and more, and it does not act again (it waits for
  someone to move the feature forward).

The windows are short for the test (turnout.toml's `[guard.reports]` in a project file of
the test's own: a 10 s window in 2 s buckets, flushed every second, a guard that looks
every second); the waits are generous bounds, never timings.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import pytest
import requests
from scraped_metrics import metric
from support import ROOT, eventually
from test_faults import Load, log_events, sign_up

from monolith.wiring import FEATURES
from scripts.demo_data import ADMIN_EMAIL, ADMIN_PASSWORD
from shims.flags.model import Flag
from shims.flags.store import SqlFlagStore

pytestmark = pytest.mark.integration

WINDOW = 10
CLIENTS = 20
STACK_ENV = {"TURNOUT_EVIDENCE_BUCKET_SECONDS": "2", "TURNOUT_EVIDENCE_FLUSH_SECONDS": "1",
             "TURNOUT_GUARD_TICK_SECONDS": "1", "TURNOUT_HOME": str(ROOT)}
GUARD_TABLE = f"""
[guard.reports]
enabled = true
window = {WINDOW}
min_calls = 5
max_p99_ms = 0       # a loaded test machine is slow; errors and the breaker decide here
cooldown = 600
"""


@pytest.fixture(scope="module", autouse=True)
def guard_project():
    """Runnerly's turnout.toml with the test's short guard for `reports`, where the app user
    can read it; the stack's processes follow it (TURNOUT_PROJECT)."""
    directory = Path(tempfile.mkdtemp(prefix="turnout-guard-project-"))
    directory.chmod(0o755)  # run as root, the app user reads the file (conftest's stacks too)
    path = directory / "turnout.toml"
    path.write_text((ROOT / "turnout.toml").read_text().replace(
        'circus = "circus.ini"', f'circus = "{ROOT / "circus.ini"}"') + GUARD_TABLE)
    path.chmod(0o644)
    STACK_ENV["TURNOUT_PROJECT"] = str(path)
    yield path
    shutil.rmtree(directory, ignore_errors=True)


def store_of(stack) -> SqlFlagStore:
    return SqlFlagStore.from_url(f"sqlite:///{stack.run_dir / 'flags.db'}", FEATURES)


def reports_flag(stack) -> Flag:
    store = store_of(stack)
    try:
        return store.snapshot().flag("reports")
    finally:
        store.engine.dispose()


def guard_entries(stack) -> list:
    store = store_of(stack)
    try:
        return [e for e in store.history("reports", 200) if e.actor.startswith("turnout-guard")]
    finally:
        store.engine.dispose()


def evidence(stack, window: int = WINDOW) -> dict:
    response = requests.get(f"{stack.monolith}/_turnout/evidence",
                            params={"feature": "reports", "window": window},
                            auth=(ADMIN_EMAIL, ADMIN_PASSWORD), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["features"][0]["evidence"][str(window)]


def guard_leaders(url: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("turnout_guard_leader "):
            return float(line.split()[1])
    return 0.0


def test_the_guard_leaves_a_healthy_feature_and_rolls_a_broken_one_back_once(stack):
    url = stack.monolith
    moved = stack.turnout("flags", "set", "reports", "live", check=False)
    assert moved.returncode == 0, moved.stderr
    runners = sign_up(url, CLIENTS)
    stopped: list[int] = []
    try:
        with Load(url, runners) as load:
            # Healthy, for more than two windows after the move (the guard judges a stage
            # only once the feature has been in it a whole window).
            time.sleep(2 * WINDOW)
            healthy = evidence(stack)
            assert reports_flag(stack) == Flag("reports", "live")
            assert guard_entries(stack) == []
            assert healthy["remote"]["calls"] >= 5 and healthy["remote"]["errors"] == 0, healthy
            assert guard_leaders(url) == 1  # one of the two workers leads

            stopped = stack.watcher_pids("reports")
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            broke_at = time.monotonic()
            took = eventually(lambda: reports_flag(stack) != Flag("reports", "live"),
                              "the guard moves reports back", timeout=WINDOW + 60)
            print(f"\nthe guard moved reports back {took:.1f}s after the service stopped "
                  f"(window {WINDOW}s)")
            assert reports_flag(stack) == Flag("reports", "canary", 50.0)
            time.sleep(WINDOW + 5)  # the breach goes on: the guard must not act again
            during = evidence(stack, 2 * WINDOW)
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    print(f"load: {load.summary()}; {time.monotonic() - broke_at:.0f}s with the service "
          f"stopped; evidence then: {during['remote']}, breaker {during['breaker']}")
    (entry,) = guard_entries(stack)
    assert (entry.old, entry.new) == ("live", "canary 50%")
    assert "remote failing in all" in entry.actor
    assert reports_flag(stack) == Flag("reports", "canary", 50.0)
    assert metric(url, "turnout_guard_rollbacks_total", feature="reports") == 1
    rolled = log_events(stack, "guard_rolled_back")
    assert [(e["feature"], e["old"], e["new"]) for e in rolled] == \
        [("reports", "live", "canary 50%")]
    assert load.failures == [], load.failures[:5]  # reads fell back; nobody saw the fault
    assert stack.turnout("flags", "set", "reports", "local", check=False).returncode == 0
