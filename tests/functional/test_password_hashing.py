"""Password hashing off the event loop, and one answer (and cost) for unknown emails
(monolith/accounts/passwords.py, LocalAccounts.authenticate)."""

import time

import gevent
import pytest
from gevent import monkey

from support import FAST_HASH, PASSWORD, assert_error, basic_auth
from monolith.accounts import passwords


def test_hashing_runs_on_another_os_thread_under_gevent():
    real_ident = monkey.get_original("threading", "get_ident")
    assert passwords.off_the_loop(real_ident) != real_ident()


def test_without_gevent_the_hash_is_simply_called(monkeypatch):
    real_ident = monkey.get_original("threading", "get_ident")
    monkeypatch.setattr(monkey, "is_module_patched", lambda name: False)
    assert passwords.off_the_loop(real_ident) == real_ident()


def test_other_greenlets_run_while_scrypt_hashes():
    """Four scrypt hashes (~100 ms of CPU each) at once; a greenlet that wakes every 10 ms
    keeps waking. On the loop it would not run at all until they were done."""
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    clock = gevent.spawn(ticker)
    gevent.sleep(0)
    started = time.monotonic()
    hashes = [gevent.spawn(passwords.hash_password, PASSWORD, "scrypt") for _ in range(4)]
    gevent.joinall(hashes, raise_error=True)
    elapsed = time.monotonic() - started
    clock.kill()
    during = [t for t in ticks if t > started]
    # Generous: at least a third of the ticks an idle loop would give.
    assert len(during) >= max(2, elapsed / 0.01 / 3), (len(during), elapsed)
    assert all(passwords.check_password(h.value, PASSWORD, "scrypt") for h in hashes[:1])


def test_the_dummy_hash_is_made_like_real_ones_and_never_matches():
    real = passwords.hash_password(PASSWORD, "scrypt")
    dummy = passwords.dummy_hash("scrypt")
    assert dummy.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]  # method and parameters
    assert passwords.check_password(None, PASSWORD, "scrypt") is False
    assert passwords.check_password(None, "not-a-real-password", "scrypt") is False


def test_an_unknown_email_costs_one_check_like_a_known_one(make_user, web, monkeypatch):
    from werkzeug import security

    runner = make_user("runner@example.com")
    checked = []
    real = security.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real(stored, password))
    for email in (runner.email, "nobody@example.com"):
        web.post("/api/tokens", headers=basic_auth(email, "wrong-password"), status=401)
    known, unknown = checked
    assert known.startswith(FAST_HASH + "$") and unknown.startswith(FAST_HASH + "$")


@pytest.mark.parametrize("email", ["runner@example.com", "nobody@example.com"])
def test_wrong_password_and_unknown_email_get_the_same_answer(make_user, web, email):
    make_user("runner@example.com")
    api = web.post_json("/api/tokens", {"email": email, "password": "wrong-password"},
                        expect_errors=True)
    assert_error(api, 401)
    assert api.json == {"error": "unauthorized", "message": "email or password is wrong"}
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = email, "wrong-password"
    page = form.submit(status=401)
    assert "email or password is wrong" in page.text


def test_a_taken_email_at_sign_up_is_not_announced(make_user, web):
    taken = make_user("runner@example.com")
    answer = web.post_json("/api/users", {"email": taken.email, "password": PASSWORD},
                           expect_errors=True)
    assert_error(answer, 409, field="email")
    assert taken.email not in answer.json["message"]
    assert "exists" not in answer.json["message"]
