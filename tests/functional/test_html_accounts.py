"""HTML accounts pages: landing, sign-up, login/logout, profile, Strava link, admin users."""

import pytest
import requests

from monolith.wiring import features
from support import serve_strava_dev
from tests.conftest import PASSWORD


def login(web, user, password=PASSWORD, next_url=None):
    res = web.get("/login" + (f"?next={next_url}" if next_url else ""))
    form = res.forms["login"]
    form["email"] = user.email
    form["password"] = password
    return form.submit()


def csrf_token(web):
    return web.get("/profile").forms["profile"]["csrf_token"].value


def user_count():
    return len(features().accounts.list_users())


# --- landing, sign-up ----------------------------------------------------------------------


def test_landing_page_for_visitors(web):
    res = web.get("/")
    assert res.status_int == 200
    assert 'href="/login"' in res.text and 'href="/signup"' in res.text
    assert "<!doctype html>" in res.text


def test_home_redirects_a_runner_to_runs(web, make_user):
    login(web, make_user())
    assert web.get("/").location.endswith("/runs")


def fill_signup(web, **values):
    form = web.get("/signup").forms["signup"]
    defaults = {"email": "new@example.com", "password": PASSWORD, "first_name": "Ada"}
    for name, value in (defaults | values).items():
        form[name] = value
    return form


def test_signup_creates_the_account_and_logs_in(web):
    res = fill_signup(web).submit()
    assert res.status_int == 302 and res.location.endswith("/runs")
    page = res.follow()
    assert "Welcome to Runnerly, Ada" in page.text
    assert "Log out" in page.text
    [user] = features().accounts.list_users()
    assert (user.email, user.first_name, user.is_admin) == ("new@example.com", "Ada", False)


@pytest.mark.parametrize(("values", "message"), [
    ({"email": ""}, "email is required"),
    ({"email": "not-an-email"}, "email must be an email address"),
    ({"password": "short"}, "password must be at least 8 characters"),
    ({"first_name": "x" * 101}, "first name must be at most 100 characters"),
])
def test_signup_refuses_bad_input_and_writes_nothing(web, values, message):
    res = fill_signup(web, **values).submit(status=400)
    assert message in res.text
    assert 'value="Ada"' in res.text or "first_name" in values  # the user's input is kept
    assert user_count() == 0


def test_an_empty_signup_names_every_field_it_needs(web):
    res = fill_signup(web, email="", password="", first_name="").submit(status=400)
    assert "This form has 2 problems" in res.text
    assert 'id="email-error">email is required<' in res.text
    assert 'id="password-error">password is required<' in res.text
    assert user_count() == 0


def test_signup_with_a_taken_email_is_a_conflict(web, make_user):
    make_user("taken@example.com")
    res = fill_signup(web, email="taken@example.com").submit(status=409)
    assert "cannot be used" in res.text
    assert user_count() == 1


def test_signup_without_csrf_token_is_refused(web):
    res = web.post("/signup", {"email": "x@example.com", "password": PASSWORD}, status=400)
    assert "form has expired" in res.text
    assert user_count() == 0


# --- login, logout -------------------------------------------------------------------------


def test_login_then_logout(web, make_user):
    user = make_user(first_name="Grace")
    res = login(web, user)
    assert res.location.endswith("/runs")
    assert "Welcome back, Grace" in res.follow().text
    logout = web.get("/runs").forms[0]  # the nav's log-out form comes first
    assert logout.action == "/logout"
    res = logout.submit()
    assert res.location.endswith("/")
    assert web.get("/runs").status_int == 302


def test_logout_is_post_only(web, make_user):
    login(web, make_user())
    web.get("/logout", status=405)


@pytest.mark.parametrize(("email", "password", "status", "message"), [
    ("runner@example.com", "wrong-password", 401, "email or password is wrong"),
    ("nobody@example.com", PASSWORD, 401, "email or password is wrong"),
    ("", PASSWORD, 400, "email is required"),
    ("runner@example.com", "", 400, "password is required"),
])
def test_login_refusals(web, make_user, email, password, status, message):
    make_user("runner@example.com")
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = email, password
    res = form.submit(status=status)
    assert message in res.text
    assert f'value="{email}"' in res.text  # email kept, password never echoed
    assert web.get("/runs").status_int == 302  # still logged out


def test_login_required_pages_redirect_to_login_and_back(web, make_user):
    res = web.get("/reports?year=2026&month=3")
    assert res.status_int == 302
    assert "/login?next=" in res.location
    page = res.follow()
    assert "Log in to see that page." in page.text
    form = page.forms["login"]
    assert form["next"].value == "/reports?year=2026&month=3"
    form["email"], form["password"] = make_user().email, PASSWORD
    assert form.submit().location.endswith("/reports?year=2026&month=3")


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "evil.example", "/\t/evil",
])
def test_login_ignores_an_unsafe_next(web, make_user, target):
    res = web.get("/login", {"next": target})
    form = res.forms["login"]
    form["email"], form["password"] = make_user().email, PASSWORD
    form["next"] = target  # even when posted directly
    location = form.submit().location
    assert location.endswith("/runs")
    assert "evil" not in location


# --- profile and Strava link ---------------------------------------------------------------


def test_profile_shows_and_updates(web, make_user):
    user = make_user(first_name="Ada", weight=60.0)
    login(web, user)
    form = web.get("/profile").forms["profile"]
    assert form["first_name"].value == "Ada"
    assert form["weight"].value == "60"
    form["last_name"], form["age"], form["max_hr"], form["rest_hr"] = "Lovelace", "36", "190", "50"
    form["weight"] = ""  # clearing a field clears the value
    res = form.submit()
    assert res.location.endswith("/profile")
    assert "Profile saved." in res.follow().text
    saved = features().accounts.get_user(user.id)
    assert (saved.last_name, saved.age, saved.max_hr, saved.rest_hr, saved.weight) == (
        "Lovelace", 36, 190, 50, None)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("weight", "heavy", "weight must be a number"),
    ("age", "36.5", "age must be an integer"),
    ("age", "200", "age must be at most 120"),
    ("vo2max", "5", "VO2max must be at least 10"),
    ("rest_hr", "100", "resting heart rate must be below maximum heart rate"),
])
def test_profile_refuses_bad_input_and_writes_nothing(web, make_user, field, value, message):
    user = make_user(first_name="Ada", max_hr=100)
    login(web, user)
    form = web.get("/profile").forms["profile"]
    form["first_name"] = "Changed"
    form[field] = value
    res = form.submit(status=400)
    assert message in res.text
    assert 'aria-invalid="true"' in res.text
    assert 'value="Changed"' in res.text
    assert features().accounts.get_user(user.id) == user


def test_profile_refuses_unknown_fields(web, make_user):
    user = make_user()
    login(web, user)
    res = web.post("/profile", {"csrf_token": csrf_token(web), "is_admin": "on"}, status=400)
    assert "unknown field(s) in form: is_admin" in res.text
    assert not features().accounts.get_user(user.id).is_admin


@pytest.fixture
def strava(requests_mock):
    """The Strava development server at the app's STRAVA_URL, as the demo runs it: it knows
    the demo runner's "demo-strava-token" only."""
    serve_strava_dev(requests_mock)
    return requests_mock


def test_link_and_unlink_strava(web, make_user, strava):
    user = make_user()
    login(web, user)
    page = web.get("/profile")
    assert "not linked" in page.text
    form = page.forms["strava"]
    form["strava_token"] = "demo-strava-token"
    assert form.submit().follow().forms["strava"]
    assert features().accounts.strava_link(user.id).token == "demo-strava-token"
    page = web.get("/profile")
    unlink = next(f for f in page.forms.values() if f.action == "/profile/strava/unlink")
    assert "Strava account unlinked." in unlink.submit().follow().text
    assert not features().accounts.get_user(user.id).strava_linked


def test_a_token_strava_refuses_is_a_form_error_naming_the_field(web, make_user, strava):
    user = make_user()
    login(web, user)
    form = web.get("/profile").forms["strava"]
    form["strava_token"] = "wrong-token"
    res = form.submit(status=422)
    assert 'id="strava_token-error">Strava token was refused by Strava' in res.text
    assert not features().accounts.get_user(user.id).strava_linked


def test_a_strava_that_cannot_be_reached_is_a_form_error_and_links_nothing(
        web, make_user, requests_mock):
    requests_mock.get("http://strava.test/api/v3/athlete",
                      exc=requests.exceptions.ConnectionError("connection refused"))
    user = make_user()
    login(web, user)
    form = web.get("/profile").forms["strava"]
    form["strava_token"] = "tok-123"
    res = form.submit(status=503)
    assert "Strava could not be reached at http://strava.test" in res.text
    assert 'id="strava_token-error"' in res.text and 'id="profile"' in res.text  # the form
    assert not features().accounts.get_user(user.id).strava_linked


def test_link_strava_refuses_an_empty_token(web, make_user):
    user = make_user()
    login(web, user)
    form = web.get("/profile").forms["strava"]
    form["strava_token"] = "   "
    res = form.submit(status=400)
    assert "Strava token is required" in res.text
    assert not features().accounts.get_user(user.id).strava_linked


def test_profile_needs_login(web):
    assert "/login" in web.get("/profile").location
    web.post("/profile/strava/unlink", status=400)  # no session, so no CSRF token either


# --- admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin(web, make_user):
    user = make_user("admin@example.com", admin=True)
    login(web, user)
    return user


def test_admin_lists_users(web, admin, make_user):
    make_user("other@example.com", first_name="<b>Bold</b>")
    res = web.get("/admin/users")
    assert "admin@example.com" in res.text and "other@example.com" in res.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in res.text  # user data is escaped
    assert 'href="/admin/users"' in res.text  # the Admin nav link


def test_admin_creates_a_user(web, admin):
    form = web.get("/admin/users").forms["create-user"]
    form["email"], form["password"], form["is_admin"] = "boss@example.com", PASSWORD, True
    res = form.submit()
    assert res.location.endswith("/admin/users")
    assert "Created admin boss@example.com." in res.follow().text
    created = [u for u in features().accounts.list_users() if u.email == "boss@example.com"]
    assert created[0].is_admin


@pytest.mark.parametrize(("values", "status", "message"), [
    ({"email": "bad", "password": PASSWORD}, 400, "email must be an email address"),
    ({"email": "new@example.com", "password": ""}, 400, "password is required"),
    ({"email": "admin@example.com", "password": PASSWORD}, 409, "cannot be used"),
])
def test_admin_create_user_refusals(web, admin, values, status, message):
    form = web.get("/admin/users").forms["create-user"]
    for name, value in values.items():
        form[name] = value
    res = form.submit(status=status)
    assert message in res.text
    assert user_count() == 1


def test_admin_edits_a_user(web, admin, make_user):
    other = make_user("other@example.com")
    form = web.get(f"/admin/users/{other.id}").forms["edit-user"]
    assert form["is_admin"].checked is False
    form["first_name"], form["age"], form["is_admin"] = "Olive", "40", True
    res = form.submit()
    assert res.location.endswith(f"/admin/users/{other.id}")
    saved = features().accounts.get_user(other.id)
    assert (saved.first_name, saved.age, saved.is_admin) == ("Olive", 40, True)


def test_admin_edit_refuses_bad_input_and_writes_nothing(web, admin, make_user):
    other = make_user("other@example.com")
    form = web.get(f"/admin/users/{other.id}").forms["edit-user"]
    form["first_name"], form["age"], form["is_admin"] = "Olive", "old", True
    res = form.submit(status=400)
    assert "age must be an integer" in res.text
    assert 'value="Olive"' in res.text
    assert features().accounts.get_user(other.id) == other


def test_admin_cannot_drop_own_admin_rights(web, admin):
    form = web.get(f"/admin/users/{admin.id}").forms["edit-user"]
    form["first_name"] = "Changed"
    form["is_admin"] = False
    res = form.submit(status=409)
    assert "you cannot remove your own admin rights" in res.text
    assert features().accounts.get_user(admin.id) == admin


def test_admin_deletes_a_user(web, admin, make_user):
    other = make_user("other@example.com")
    page = web.get(f"/admin/users/{other.id}")
    delete = next(f for f in page.forms.values() if f.action.endswith("/delete"))
    res = delete.submit()
    assert "Deleted other@example.com." in res.follow().text
    assert user_count() == 1


def test_admin_cannot_delete_themselves(web, admin):
    page = web.get(f"/admin/users/{admin.id}")
    assert not [f for f in page.forms.values() if f.action.endswith("/delete")]
    res = web.post(f"/admin/users/{admin.id}/delete", {"csrf_token": csrf_token(web)},
                   status=409)
    assert "you cannot delete your own account" in res.text
    assert user_count() == 1


def test_admin_unknown_user_is_404(web, admin):
    web.get("/admin/users/999", status=404)
    token = csrf_token(web)
    web.post("/admin/users/999", {"csrf_token": token, "first_name": "x"}, status=404)
    res = web.post("/admin/users/999/delete", {"csrf_token": token}, status=404)
    assert "user 999 not found" in res.text


def test_non_admin_gets_403_on_admin_pages(web, make_user):
    admin = make_user("admin@example.com", admin=True)
    runner = make_user()
    login(web, runner)
    assert 'href="/admin/users"' not in web.get("/profile").text
    token = csrf_token(web)
    web.get("/admin/users", status=403)
    web.get(f"/admin/users/{admin.id}", status=403)
    res = web.post("/admin/users", {"csrf_token": token, "email": "x@example.com",
                                    "password": PASSWORD, "is_admin": "on"}, status=403)
    assert "only an admin" in res.text
    web.post(f"/admin/users/{runner.id}", {"csrf_token": token, "is_admin": "on"}, status=403)
    web.post(f"/admin/users/{admin.id}/delete", {"csrf_token": token}, status=403)
    assert user_count() == 2
    assert not features().accounts.get_user(runner.id).is_admin


def test_admin_pages_need_login(web):
    assert "/login" in web.get("/admin/users").location


def test_unknown_page_is_a_404_page(web):
    res = web.get("/no-such-page", status=404)
    assert "404" in res.text and "<!doctype html>" in res.text
