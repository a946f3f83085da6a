"""Login throttling and server-side logout on the real stack: two gunicorn workers counting
in one Redis (the default storage), and a session cookie that dies with its logout."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from scripts.demo_data import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.integration

# Default limits (10 failed logins a minute per email); counters of this stack only.
STACK_ENV = {"TURNOUT_RATELIMIT_KEY_PREFIX": f"limits-{uuid.uuid4().hex}"}


@pytest.fixture(autouse=True)
def needs_redis(redis_url):
    """The stack counts in this Redis (its default storage)."""


def test_the_eleventh_attempt_is_refused_whichever_worker_answers(stack):
    url, email = stack.monolith, f"limits-{uuid.uuid4().hex[:8]}@example.com"
    created = requests.post(f"{url}/api/users", json={"email": email, "password": "right-pass-1"},
                            timeout=30)
    assert created.status_code == 201, created.text
    remaining = set()
    for _ in range(10):  # a new connection each: both workers answer some
        wrong = requests.post(f"{url}/api/tokens", auth=(email, "wrong-password"), timeout=30,
                              headers={"Connection": "close"})
        assert wrong.status_code == 401, wrong.text
        remaining.add(wrong.headers.get("X-RateLimit-Remaining"))
    refused = requests.post(f"{url}/api/tokens", auth=(email, "right-pass-1"), timeout=30)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "too_many_requests"
    assert "10 per minute" in refused.json()["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    # one count for the stack: the remaining budget fell with every attempt (a count per
    # worker would repeat values)
    assert len(remaining) == 10, remaining


def test_a_cookie_copied_before_logout_is_dead_after_it(stack):
    browser = requests.Session()
    page = browser.get(f"{stack.monolith}/login", timeout=30)
    assert "SameSite=Lax" in page.headers["Set-Cookie"]
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    browser.post(f"{stack.monolith}/login", timeout=30, data={
        "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf})
    cookie = browser.cookies["session"]
    copy = requests.Session()
    copy.cookies.set("session", cookie)
    assert copy.get(f"{stack.monolith}/profile", timeout=30, allow_redirects=False) \
        .status_code == 200
    profile = browser.get(f"{stack.monolith}/profile", timeout=30)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', profile.text).group(1)
    browser.post(f"{stack.monolith}/logout", data={"csrf_token": csrf}, timeout=30)
    dead = copy.get(f"{stack.monolith}/profile", timeout=30, allow_redirects=False)
    assert dead.status_code == 302 and "/login" in dead.headers["Location"]
