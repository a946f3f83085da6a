"""Logins the server can end (monolith/accounts/grants.py): logout, "log out everywhere",
revoking a token, and a token's renewals bounded by its login's maximum lifetime; token
answers are never cached."""

import datetime as dt

import pytest
from webtest import TestApp

from support import LOOPBACK, PASSWORD, assert_error, basic_auth


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com")


def new_browser(app):
    """A browser of its own. Each request gets an app context of its own: the fixture's
    long-lived one would share Flask-WTF's cached CSRF token (in `g`) between browsers,
    which real workers never do."""
    def isolated(environ, start_response):
        with app.app_context():
            return app(environ, start_response)

    return TestApp(isolated, extra_environ=LOOPBACK)


def with_cookie(app, saved):
    """Another browser holding only a copy of a session cookie (the attacker's)."""
    web = new_browser(app)
    web.set_cookie("session", saved)
    return web


def browser(app, user):
    """A fresh browser, logged in through the login form."""
    web = new_browser(app)
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    assert form.submit().status_int == 302
    assert web.get("/profile").status_int == 200
    return web


def token(web, user):
    answer = web.post("/api/tokens", headers=basic_auth(user.email))
    return {"Authorization": f"Bearer {answer.json['token']}"}


def logged_out(web) -> bool:
    page = web.get("/profile", expect_errors=True)
    return page.status_int == 302 and "/login" in page.location


def test_a_session_cookie_saved_before_logout_no_longer_works_after_it(app, runner):
    web = browser(app, runner)
    saved = web.cookies["session"]
    csrf = web.get("/profile").forms["profile"]["csrf_token"].value
    assert not logged_out(with_cookie(app, saved))  # the copy works while the login stands
    web.post("/logout", {"csrf_token": csrf})
    assert logged_out(web)
    assert logged_out(with_cookie(app, saved))


def test_logging_out_one_browser_leaves_the_others_logged_in(app, runner):
    first, second = browser(app, runner), browser(app, runner)
    first.post("/logout", {"csrf_token": first.get("/profile").forms["profile"]
                           ["csrf_token"].value})
    assert logged_out(first) and not logged_out(second)


def test_log_out_everywhere_button_ends_every_session_and_token(app, web, runner, make_user):
    here, elsewhere = browser(app, runner), browser(app, runner)
    api = token(web, runner)
    other = make_user("other@example.com")
    others_api, others_browser = token(web, other), browser(app, other)
    page = here.get("/profile")
    res = page.forms["logout-everywhere"].submit()
    assert res.status_int == 302 and "logged out everywhere (3 logins ended)" in \
        res.follow().text
    assert logged_out(here) and logged_out(elsewhere)
    assert_error(web.get("/api/me", headers=api, expect_errors=True), 401, mentions=["revoked"])
    # another runner's logins stand
    assert web.get("/api/me", headers=others_api).json["email"] == other.email
    assert not logged_out(others_browser)


def test_log_out_everywhere_through_the_api(app, web, runner):
    session, api, second_api = browser(app, runner), token(web, runner), token(web, runner)
    assert web.delete("/api/me/logins", headers=api).status_int == 204
    for headers in (api, second_api):
        assert web.get("/api/me", headers=headers, expect_errors=True).status_int == 401
    assert logged_out(session)
    # the password still works: a new login begins
    assert web.get("/api/me", headers=token(web, runner)).status_int == 200


def test_a_revoked_token_and_its_renewals_stop_working_others_stand(web, runner):
    doomed, kept = token(web, runner), token(web, runner)
    renewal = {"Authorization": "Bearer " + web.post("/api/tokens",
                                                       headers=doomed).json["token"]}
    assert web.delete("/api/tokens", headers=doomed).status_int == 204
    for headers in (doomed, renewal):
        assert_error(web.get("/api/me", headers=headers, expect_errors=True), 401,
                     mentions=["revoked"])
    assert web.get("/api/me", headers=kept).status_int == 200


def test_revoking_needs_a_bearer_token(web, runner):
    refused = web.delete("/api/tokens", headers=basic_auth(runner.email), expect_errors=True)
    assert_error(refused, 400, field="Authorization", mentions=["bearer token"])


def test_a_token_cannot_renew_itself_past_its_logins_maximum_lifetime(app, web, runner,
                                                                      monkeypatch):
    from monolith.accounts import grants

    lifetime = app.config["API_TOKEN_MAX_LIFETIME"]
    first = web.post("/api/tokens", headers=basic_auth(runner.email)).json
    assert first["expires_in"] == min(app.config["API_TOKEN_MAX_AGE"], lifetime)
    start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    headers = {"Authorization": f"Bearer {first['token']}"}
    # Renew a day before the end: the new token lives only until the login's end.
    monkeypatch.setattr(grants, "utcnow",
                        lambda: start + dt.timedelta(seconds=lifetime - 3600))
    renewed = web.post("/api/tokens", headers=headers).json
    assert 3500 <= renewed["expires_in"] <= 3600
    # Past the end, the renewed token is refused, and cannot renew itself either.
    monkeypatch.setattr(grants, "utcnow", lambda: start + dt.timedelta(seconds=lifetime + 1))
    renewed_headers = {"Authorization": f"Bearer {renewed['token']}"}
    assert_error(web.get("/api/me", headers=renewed_headers, expect_errors=True), 401,
                 mentions=["maximum lifetime"])
    assert web.post("/api/tokens", headers=renewed_headers, expect_errors=True).status_int \
        == 401


def test_a_token_from_before_grants_is_refused(app, web, runner):
    from itsdangerous import URLSafeTimedSerializer

    from monolith.auth import TOKEN_SALT

    old = URLSafeTimedSerializer(app.secret_key, salt=TOKEN_SALT).dumps({"uid": runner.id})
    refused = web.get("/api/me", headers={"Authorization": f"Bearer {old}"},
                      expect_errors=True)
    assert_error(refused, 401, mentions=["not valid"])


def test_token_answers_are_not_cached_even_when_replayed(web, runner):
    key = {"Idempotency-Key": "token-request-1", **basic_auth(runner.email)}
    first = web.post("/api/tokens", headers=key)
    replay = web.post("/api/tokens", headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json["token"] == first.json["token"]
    for answer in (first, replay):
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Pragma"] == "no-cache"


def test_logging_in_again_ends_the_browsers_previous_login(app, runner, make_user):
    web = browser(app, runner)
    saved = web.cookies["session"]
    other = make_user("other@example.com")
    csrf = web.get("/profile").forms["profile"]["csrf_token"].value
    web.post("/login", {"email": other.email, "password": PASSWORD, "csrf_token": csrf})
    assert other.email in web.get("/profile").text
    assert logged_out(with_cookie(app, saved))
