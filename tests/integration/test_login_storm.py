"""Wrong passwords do not stall the monolith: 16 concurrent failing logins (real scrypt, on
gunicorn gevent workers under circusd) while /healthz keeps answering.

The throttle is raised for this stack (and counts under a key prefix of its own) so that
every attempt really hashes; tests/functional/test_login_throttle.py proves the throttle.
"""

from __future__ import annotations

import statistics
import time
import uuid

import gevent
import pytest
import requests

pytestmark = pytest.mark.integration

STORM = 16
STORM_SECONDS = 8.0
MEDIAN_BOUND_S = 0.100  # the bound for /healthz during the storm
STACK_ENV = {"TURNOUT_LOGIN_LIMIT_PER_ACCOUNT": "100000 per minute",
             "TURNOUT_LOGIN_LIMIT_PER_ADDRESS": "100000 per minute",
             "TURNOUT_RATELIMIT_KEY_PREFIX": f"storm-{uuid.uuid4().hex}"}


def probe(url: str, session: requests.Session) -> float:
    started = time.perf_counter()
    answer = session.get(f"{url}/healthz", timeout=30)
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - started


def wrong_logins(url: str, email: str, until: float, statuses: list[int]) -> None:
    session = requests.Session()
    while time.monotonic() < until:
        answer = session.post(f"{url}/api/tokens", timeout=60,
                              json={"email": email, "password": "wrong-password"})
        statuses.append(answer.status_code)


def test_sixteen_concurrent_wrong_logins_leave_healthz_answering(stack):
    url, session = stack.monolith, requests.Session()
    idle = [probe(url, session) for _ in range(30)]
    statuses: list[int] = []
    until = time.monotonic() + STORM_SECONDS
    storm = [gevent.spawn(wrong_logins, url, f"storm-{n}-{uuid.uuid4().hex[:6]}@example.com",
                          until, statuses) for n in range(STORM)]
    gevent.sleep(0.5)  # every storm client has a request in flight
    during = []
    while time.monotonic() < until - 0.2:
        during.append(probe(url, session))
        gevent.sleep(0.02)
    gevent.joinall(storm, timeout=120, raise_error=True)

    median, idle_median = statistics.median(during), statistics.median(idle)
    summary = (f"/healthz median {median * 1000:.1f} ms during the storm (max "
               f"{max(during) * 1000:.0f} ms, {len(during)} probes), idle "
               f"{idle_median * 1000:.1f} ms; {len(statuses)} wrong logins answered "
               f"{sorted(set(statuses))}")
    print(summary)
    # The storm really hashed: every answer a 401 (none throttled), and each client kept
    # a login in flight until the probing ended (scrypt is busy throughout).
    assert set(statuses) == {401}, summary
    assert len(statuses) >= STORM, summary
    assert median < MEDIAN_BOUND_S, summary
