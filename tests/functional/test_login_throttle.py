"""Login throttling (monolith/accounts/throttle.py): failed password attempts per account and
per client address, and taken-email sign-ups per address, answered 429 with Retry-After.

The app here counts in memory with small limits, so each test reaches them in a few tries;
one test runs the same limits on Redis across two apps (two workers), as production does.
"""

import uuid

import pytest
from webtest import TestApp

from support import LOOPBACK, PASSWORD, assert_error, basic_auth, runnerly_app

PER_ACCOUNT, PER_ADDRESS, SIGNUP_TAKEN = "3 per minute", "5 per minute", "2 per minute"
LIMITS = {"LOGIN_LIMIT_PER_ACCOUNT": PER_ACCOUNT, "LOGIN_LIMIT_PER_ADDRESS": PER_ADDRESS,
          "SIGNUP_TAKEN_LIMIT_PER_ADDRESS": SIGNUP_TAKEN}


def make_app(tmp_path, **config):
    return runnerly_app(tmp_path, **LIMITS, **config)


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    with app.app_context():
        yield app


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


def token_request(web, email, password, address="127.0.0.1"):
    return web.post_json("/api/tokens", {"email": email, "password": password},
                         extra_environ={"REMOTE_ADDR": address}, expect_errors=True)


def assert_throttled(response, mentions):
    assert_error(response, 429, mentions=mentions)
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_wrong_passwords_then_even_the_right_one_is_refused_with_429(web, runner):
    for _ in range(3):
        assert token_request(web, runner.email, "wrong-password").status_int == 401
    refused = token_request(web, runner.email, PASSWORD)
    assert_throttled(refused, ["failed logins for this email", PER_ACCOUNT])


def test_the_account_limit_follows_the_email_whatever_its_case_or_address(web, runner):
    for number, email in enumerate(["runner@example.com", "RUNNER@example.com",
                                    " runner@Example.com"]):
        assert token_request(web, email, "wrong", f"10.0.0.{number}").status_int == 401
    assert_throttled(token_request(web, runner.email, PASSWORD, "10.0.0.9"),
                     ["for this email"])


def test_one_address_guessing_many_emails_is_refused_with_429(web, runner):
    for number in range(5):
        assert token_request(web, f"nobody{number}@example.com", "wrong").status_int == 401
    assert_throttled(token_request(web, runner.email, PASSWORD), ["from your address",
                                                                   PER_ADDRESS])
    # another address is not held back by this one's failures
    assert token_request(web, runner.email, PASSWORD, "10.1.1.1").status_int == 201


def test_right_passwords_are_never_counted(web, runner):
    for _ in range(12):
        assert token_request(web, runner.email, PASSWORD).status_int == 201


def test_basic_auth_on_any_api_request_counts_and_is_refused_before_hashing(
        web, runner, monkeypatch):
    from monolith.accounts import service

    checked = []
    real = service.check_password
    monkeypatch.setattr(service, "check_password",
                        lambda *args: checked.append(args) or real(*args))
    for _ in range(3):
        assert web.get("/api/me", headers=basic_auth(runner.email, "wrong"),
                       expect_errors=True).status_int == 401
    assert len(checked) == 3
    refused = web.get("/api/me", headers=basic_auth(runner.email), expect_errors=True)
    assert_throttled(refused, ["for this email"])
    assert len(checked) == 3  # no hash was checked for the refused request


def test_renewing_with_a_bearer_token_is_not_a_password_attempt(web, runner):
    token = token_request(web, runner.email, PASSWORD).json["token"]
    for _ in range(8):
        renewed = web.post("/api/tokens", headers={"Authorization": f"Bearer {token}"})
        assert renewed.status_int == 201


def login_form(web, email, password):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = email, password
    return form.submit(expect_errors=True)


def test_the_login_page_answers_an_html_429_with_retry_after(web, runner):
    for _ in range(3):
        assert login_form(web, runner.email, "wrong-password").status_int == 401
    refused = login_form(web, runner.email, PASSWORD)
    assert refused.status_int == 429 and refused.content_type == "text/html"
    assert "too many failed logins for this email" in refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert web.get("/profile").status_int == 302  # not logged in


def test_taken_email_sign_ups_are_throttled_new_ones_are_not(web, runner):
    for number in range(4):  # creating accounts is not counted
        body = {"email": f"new{number}@example.com", "password": PASSWORD}
        assert web.post_json("/api/users", body).status_int == 201
    taken = {"email": runner.email, "password": PASSWORD}
    for _ in range(2):
        assert web.post_json("/api/users", taken, expect_errors=True).status_int == 409
    assert_throttled(web.post_json("/api/users", taken, expect_errors=True),
                     ["sign-ups with a taken email", SIGNUP_TAKEN])


def test_other_requests_carry_no_rate_limit_headers(web, runner):
    assert "X-RateLimit-Limit" not in web.get("/").headers
    assert "X-RateLimit-Limit" in token_request(web, runner.email, PASSWORD).headers


# --- Redis: one count for every worker --------------------------------------------------

def test_workers_sharing_redis_share_the_count(tmp_path, redis_url):
    prefix = f"test-{uuid.uuid4().hex}"  # this test's counters only
    first = make_app(tmp_path / "a", RATELIMIT_STORAGE_URI=redis_url,
                     RATELIMIT_KEY_PREFIX=prefix, DATABASE_URL=f"sqlite:///{tmp_path}/m.db")
    second = make_app(tmp_path / "b", RATELIMIT_STORAGE_URI=redis_url,
                      RATELIMIT_KEY_PREFIX=prefix, DATABASE_URL=f"sqlite:///{tmp_path}/m.db")
    one, two = TestApp(first, extra_environ=LOOPBACK), TestApp(second, extra_environ=LOOPBACK)
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    assert one.post_json("/api/users", {"email": email, "password": PASSWORD}).status_int == 201
    for web in (one, two, one):
        assert token_request(web, email, "wrong-password").status_int == 401
    assert_throttled(token_request(two, email, PASSWORD), ["for this email"])


def test_an_unreachable_redis_falls_back_to_counting_in_memory(tmp_path):
    from support import free_port

    app = make_app(tmp_path, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}")
    web = TestApp(app, extra_environ=LOOPBACK)
    email = "runner@example.com"
    web.post_json("/api/users", {"email": email, "password": PASSWORD})
    for _ in range(3):
        assert token_request(web, email, "wrong-password").status_int == 401
    assert_throttled(token_request(web, email, PASSWORD), ["for this email"])
