"""JSON API for accounts: sign-up, tokens, /api/me, Strava link and admin user management.

Every refusal is checked three ways: the exact status, a JSON error body naming the culprit,
and that nothing was written (re-read through the Accounts contract).
"""

import base64
import time

import pytest
import requests
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from support import TEST_STRAVA, PASSWORD, assert_error, basic_auth, serve_strava_dev
from monolith.auth import TOKEN_SALT
from monolith.wiring import features
from contracts.runs import RunInput

ADMIN_PASSWORD = "admin-password-1"


def emails():
    return sorted(user.email for user in features().accounts.list_users())


@pytest.fixture
def admin(make_user):
    return make_user("admin@example.com", admin=True)


@pytest.fixture
def runner(make_user):
    return make_user("runner@example.com", first_name="Ada", age=36, max_hr=190, rest_hr=100)


# --- POST /api/users ---------------------------------------------------------------------

def test_sign_up_creates_a_runner_who_can_then_get_a_token(web):
    response = web.post_json("/api/users", {"email": "New@Example.com", "password": PASSWORD,
                                            "first_name": "Eliud", "age": "38", "weight": 56.5})
    assert response.status_int == 201
    user = response.json
    assert user["email"] == "new@example.com"
    assert (user["first_name"], user["age"], user["weight"]) == ("Eliud", 38, 56.5)
    assert user["is_admin"] is False and user["strava_linked"] is False
    assert "password" not in str(user) and "password_hash" not in user
    token = web.post("/api/tokens", headers=basic_auth("new@example.com")).json["token"]
    me = web.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json
    assert me["id"] == user["id"]


@pytest.mark.parametrize("body, field, mentions", [
    ({"password": PASSWORD}, "email", ["required"]),
    ({"email": "a@example.com"}, "password", ["required"]),
    ({"email": "a@example.com", "password": "short"}, "password", ["at least 8"]),
    ({"email": "a@example.com", "password": 12345678}, "password", ["string"]),
    ({"email": "not-an-email", "password": PASSWORD}, "email", ["email address"]),
    ({"email": 42, "password": PASSWORD}, "email", ["string"]),
    ({"email": "a@example.com", "password": PASSWORD, "age": 3}, "age", ["at least 5"]),
    ({"email": "a@example.com", "password": PASSWORD, "age": "old"}, "age", ["integer"]),
    ({"email": "a@example.com", "password": PASSWORD, "age": True}, "age", ["integer"]),
    ({"email": "a@example.com", "password": PASSWORD, "age": 36.5}, "age", ["integer"]),
    ({"email": "a@example.com", "password": PASSWORD, "weight": 301}, "weight", ["at most"]),
    ({"email": "a@example.com", "password": PASSWORD, "first_name": 7}, "first_name",
     ["string"]),
    ({"email": "a@example.com", "password": PASSWORD, "first_name": "x" * 101}, "first_name",
     ["at most 100"]),
    ({"email": "a@example.com", "password": PASSWORD, "max_hr": 110, "rest_hr": 110},
     "rest_hr", ["below max_hr"]),
    ({"email": "a@example.com", "password": PASSWORD, "is_admin": True}, "is_admin",
     ["unknown", "is_admin"]),
])
def test_sign_up_refuses_bad_fields_and_creates_nobody(web, body, field, mentions):
    response = web.post_json("/api/users", body, expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert emails() == []


@pytest.mark.parametrize("raw, mentions", [
    ("", ["empty"]),
    ("{not json", ["not valid JSON"]),
    ('["a@example.com"]', ["JSON object"]),
    ('"a@example.com"', ["JSON object"]),
    ("42", ["JSON object"]),
    ("null", ["JSON object"]),
])
def test_sign_up_refuses_a_body_that_is_not_a_json_object(web, raw, mentions):
    response = web.post("/api/users", raw, content_type="application/json", expect_errors=True)
    assert_error(response, 400, mentions=mentions)
    assert emails() == []


def test_sign_up_refuses_nan_in_a_number_field(web):
    raw = f'{{"email": "a@example.com", "password": "{PASSWORD}", "weight": NaN}}'
    response = web.post("/api/users", raw, content_type="application/json", expect_errors=True)
    assert_error(response, 400, field="weight", mentions=["finite"])
    assert emails() == []


def test_sign_up_refuses_a_duplicate_email_whatever_its_case(web, runner):
    response = web.post_json("/api/users", {"email": "RUNNER@example.com", "password": PASSWORD},
                             expect_errors=True)
    assert_error(response, 409, field="email", mentions=["cannot be used"])
    assert emails() == ["runner@example.com"]


# --- POST /api/tokens --------------------------------------------------------------------

def test_token_from_basic_auth_from_a_json_body_and_from_a_token(web, runner):
    by_basic = web.post("/api/tokens", headers=basic_auth(runner.email))
    assert by_basic.status_int == 201
    assert by_basic.json["token_type"] == "Bearer"
    assert by_basic.json["expires_in"] == 86400
    by_body = web.post_json("/api/tokens", {"email": "Runner@Example.com", "password": PASSWORD})
    refreshed = web.post("/api/tokens",
                         headers={"Authorization": f"Bearer {by_body.json['token']}"})
    for response in (by_basic, by_body, refreshed):
        headers = {"Authorization": f"Bearer {response.json['token']}"}
        assert web.get("/api/me", headers=headers).json["id"] == str(runner.id)


def test_token_for_a_password_with_surrounding_spaces(web, make_user):
    user = make_user("spaces@example.com", password="  padded pass  ")
    response = web.post_json("/api/tokens", {"email": user.email, "password": "  padded pass  "})
    assert response.status_int == 201
    assert web.post("/api/tokens", headers=basic_auth(user.email, "  padded pass  ")).json


@pytest.mark.parametrize("body", [
    {"email": "runner@example.com", "password": "wrong-password"},
    {"email": "nobody@example.com", "password": PASSWORD},
])
def test_token_refused_for_wrong_credentials(web, runner, body):
    response = web.post_json("/api/tokens", body, expect_errors=True)
    assert_error(response, 401, mentions=["email or password is wrong"])


@pytest.mark.parametrize("body, status, field", [
    ({"email": "runner@example.com"}, 400, "password"),
    ({"password": PASSWORD}, 400, "email"),
    ({"email": "runner", "password": PASSWORD}, 400, "email"),
    ({"email": "runner@example.com", "password": 123456789}, 400, "password"),
    ({"email": "runner@example.com", "password": PASSWORD, "remember": True}, 400, "remember"),
])
def test_token_refuses_a_malformed_body(web, runner, body, status, field):
    response = web.post_json("/api/tokens", body, expect_errors=True)
    assert_error(response, status, field=field)


def test_token_without_credentials_names_the_empty_body(web):
    assert_error(web.post("/api/tokens", expect_errors=True), 400, mentions=["empty"])


# --- Authorization header ----------------------------------------------------------------

def expired_token(user_id):
    class PastSigner(TimestampSigner):
        def get_timestamp(self):
            return int(time.time()) - 86400 - 60

    serializer = URLSafeTimedSerializer("test-secret", salt=TOKEN_SALT, signer=PastSigner)
    return serializer.dumps({"uid": user_id})


def foreign_token(user_id):
    return URLSafeTimedSerializer("another-secret", salt=TOKEN_SALT).dumps({"uid": user_id})


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("header, mentions", [
    (None, ["log in first"]),
    ("Bearer not-a-token", ["not valid"]),
    ("Bearer", ["not valid"]),
    ("Token abc", ["Bearer <token>"]),
    ("Basic !!!not-base64!!!", ["base64"]),
    (f"Basic {b64('no-colon-here')}", ["email:password"]),
    ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), ["base64"]),
    (f"Basic {b64('runner@example.com:wrong-password')}", ["wrong"]),
])
def test_me_refuses_missing_or_bad_credentials(web, runner, header, mentions):
    headers = {"Authorization": header} if header else {}
    response = web.get("/api/me", headers=headers, expect_errors=True)
    assert_error(response, 401, mentions=mentions)


def test_me_refuses_an_expired_token(web, runner):
    headers = {"Authorization": f"Bearer {expired_token(runner.id)}"}
    assert_error(web.get("/api/me", headers=headers, expect_errors=True), 401,
                 mentions=["expired", "/api/tokens"])


def test_me_refuses_a_token_signed_with_another_secret(web, runner):
    headers = {"Authorization": f"Bearer {foreign_token(runner.id)}"}
    assert_error(web.get("/api/me", headers=headers, expect_errors=True), 401,
                 mentions=["not valid"])


@pytest.mark.parametrize("path", ["/api/me", "/api/runs"])
def test_a_token_dies_with_its_account(web, runner, admin, api_headers, path):
    headers = api_headers(runner)
    assert web.delete(f"/api/admin/users/{runner.id}", headers=api_headers(admin)).status_int \
        == 204
    # Every route, those that never need the runner's record (the run list) included.
    assert_error(web.get(path, headers=headers, expect_errors=True), 401, mentions=["revoked"])


def test_a_token_whose_account_vanished_behind_the_api_is_refused(web, runner, api_headers):
    """Deleted through the contract (a script, another service): the grant still stands,
    and the record the request asks for is missing: 401, not a 404 or a 500."""
    headers = api_headers(runner)
    features().accounts.delete_user(runner.id)
    assert_error(web.get("/api/me", headers=headers, expect_errors=True), 401,
                 mentions=["deleted"])


def test_basic_auth_works_on_any_api_route(web, runner):
    assert web.get("/api/me", headers=basic_auth(runner.email)).json["id"] == str(runner.id)


def test_one_request_credentials_never_answer_for_the_next(web, runner, api_headers):
    assert web.get("/api/me", headers=api_headers(runner)).json["id"] == str(runner.id)
    assert_error(web.get("/api/me", expect_errors=True), 401)


def test_the_api_ignores_a_browser_session_cookie(app, web, runner):
    """The API is exempt from CSRF, so it must not accept the HTML session's cookie."""
    cookie = app.session_interface.get_signing_serializer(app).dumps(
        {"_user_id": str(runner.id), "_fresh": True})
    web.set_cookie("session", cookie)
    # text/plain: what a hostile page can POST cross-site without a CORS preflight
    response = web.post("/api/runs", '{"name": "Forged", "distance": 5000, '
                        '"start_date": "2026-05-03T07:00:00", "elapsed_time": 1500}',
                        content_type="text/plain", expect_errors=True)
    assert_error(response, 401)
    assert features().runs.list_runs(runner.id, 2026, 5) == []
    profile = web.patch_json("/api/me", {"first_name": "Mallory"}, expect_errors=True)
    assert_error(profile, 401)
    assert features().accounts.get_user(runner.id).first_name == "Ada"


# --- GET and PATCH /api/me ---------------------------------------------------------------

def test_me_answers_the_profile(web, runner, api_headers):
    me = web.get("/api/me", headers=api_headers(runner)).json
    assert (me["email"], me["first_name"], me["age"], me["max_hr"]) == \
        ("runner@example.com", "Ada", 36, 190)


def test_patch_me_changes_only_the_given_fields(web, runner, api_headers):
    response = web.patch_json("/api/me", {"last_name": "Lovelace", "weight": "61.5",
                                          "age": None}, headers=api_headers(runner))
    assert response.status_int == 200
    user = features().accounts.get_user(runner.id)
    assert (user.first_name, user.last_name, user.weight, user.age, user.max_hr) == \
        ("Ada", "Lovelace", 61.5, None, 190)
    assert response.json["last_name"] == "Lovelace"


@pytest.mark.parametrize("body, field, mentions", [
    ({"age": 36, "weight": "heavy"}, "weight", ["number"]),
    ({"first_name": "Grace", "max_hr": 300}, "max_hr", ["at most 250"]),
    ({"first_name": "Grace", "rest_hr": 121}, "rest_hr", ["at most 120"]),
    ({"first_name": "Grace", "max_hr": 95}, "rest_hr", ["below max_hr"]),  # stored rest_hr
    ({"first_name": "Grace", "vo2max": False}, "vo2max", ["number"]),
    ({"first_name": ["Grace"]}, "first_name", ["string"]),
    ({"first_name": "Grace", "email": "new@example.com"}, "email", ["unknown"]),
    ({"first_name": "Grace", "is_admin": True}, "is_admin", ["unknown"]),
])
def test_patch_me_with_any_bad_field_changes_nothing(web, runner, api_headers, body, field,
                                                     mentions):
    before = features().accounts.get_user(runner.id)
    response = web.patch_json("/api/me", body, headers=api_headers(runner), expect_errors=True)
    assert_error(response, 400, field=field, mentions=mentions)
    assert features().accounts.get_user(runner.id) == before


@pytest.mark.parametrize("raw, field", [
    ('{"age": Infinity}', "age"),
    ('{"weight": NaN}', "weight"),
    ('{"vo2max": -Infinity}', "vo2max"),
])
def test_patch_me_refuses_non_finite_numbers(web, runner, api_headers, raw, field):
    before = features().accounts.get_user(runner.id)
    response = web.patch("/api/me", raw, headers=api_headers(runner),
                         content_type="application/json", expect_errors=True)
    assert_error(response, 400, field=field)
    assert features().accounts.get_user(runner.id) == before


@pytest.mark.parametrize("raw", ["", "[]", '"age"', "{,}"])
def test_patch_me_refuses_a_body_that_is_not_an_object(web, runner, api_headers, raw):
    before = features().accounts.get_user(runner.id)
    response = web.patch("/api/me", raw, headers=api_headers(runner),
                         content_type="application/json", expect_errors=True)
    assert_error(response, 400)
    assert features().accounts.get_user(runner.id) == before


# --- PUT / DELETE /api/me/strava ---------------------------------------------------------

@pytest.fixture
def strava(requests_mock):
    """The Strava development server at the app's STRAVA_URL, knowing "tok-123"."""
    serve_strava_dev(requests_mock, "tok-123:Ada Runner")
    return requests_mock


def test_link_and_unlink_strava(web, runner, api_headers, strava):
    headers = api_headers(runner)
    linked = web.put_json("/api/me/strava", {"strava_token": " tok-123 "}, headers=headers)
    assert linked.json["strava_linked"] is True
    assert features().accounts.strava_link(runner.id).token == "tok-123"
    assert "tok-123" not in linked.text  # the token is a secret: never echoed
    unlinked = web.delete("/api/me/strava", headers=headers)
    assert unlinked.json["strava_linked"] is False
    assert features().accounts.strava_links() == []


@pytest.mark.parametrize("body, mentions", [
    ({}, ["required"]),
    ({"strava_token": "   "}, ["required"]),
    ({"strava_token": 12345}, ["string"]),
    ({"strava_token": "x" * 201}, ["at most 200"]),
    ({"strava_token": "ok", "athlete": 1}, ["unknown"]),
])
def test_link_strava_refuses_a_bad_token_and_keeps_the_old_one(web, runner, api_headers, body,
                                                                mentions):
    features().accounts.link_strava(runner.id, "old-token")
    response = web.put_json("/api/me/strava", body, headers=api_headers(runner),
                            expect_errors=True)
    body_json = assert_error(response, 400, mentions=mentions)
    assert body_json["field"] in ("strava_token", "athlete")
    assert features().accounts.strava_link(runner.id).token == "old-token"


def test_a_token_strava_refuses_is_a_422_at_link_time_and_the_old_one_stays(
        web, runner, api_headers, strava):
    features().accounts.link_strava(runner.id, "old-token")
    response = web.put_json("/api/me/strava", {"strava_token": "wrong-token"},
                            headers=api_headers(runner), expect_errors=True)
    body = assert_error(response, 422, field="strava_token", mentions=["refused by Strava"])
    assert body["error"] == "unprocessable"
    assert strava.last_request.headers["Authorization"] == "Bearer wrong-token"
    assert features().accounts.strava_link(runner.id).token == "old-token"


@pytest.mark.parametrize("strava_fails", [
    {"exc": requests.exceptions.ConnectTimeout("no answer")},
    {"exc": requests.exceptions.ConnectionError("connection refused")},
    {"status_code": 503, "text": "down for maintenance"},
])
def test_a_strava_that_cannot_check_the_token_is_a_503_and_stores_nothing(
        web, runner, api_headers, requests_mock, strava_fails):
    requests_mock.get(f"{TEST_STRAVA}/api/v3/athlete", **strava_fails)
    response = web.put_json("/api/me/strava", {"strava_token": "tok-123"},
                            headers=api_headers(runner), expect_errors=True)
    body = assert_error(response, 503, field="strava_token", mentions=["nothing was linked"])
    assert body["error"] == "upstream_unavailable"
    assert response.headers["Retry-After"] == "30"
    assert not features().accounts.get_user(runner.id).strava_linked


def test_strava_link_needs_a_login(web, runner):
    assert_error(web.put_json("/api/me/strava", {"strava_token": "t"}, expect_errors=True), 401)
    assert features().accounts.strava_links() == []


# --- admin: list, create, read -----------------------------------------------------------

def test_admin_lists_users(web, admin, runner, api_headers):
    users = web.get("/api/admin/users", headers=api_headers(admin)).json
    assert [user["email"] for user in users] == ["admin@example.com", "runner@example.com"]


@pytest.mark.parametrize("method, path", [
    ("get", "/api/admin/users"),
    ("post", "/api/admin/users"),
    ("get", "/api/admin/users/1"),
    ("patch", "/api/admin/users/1"),
    ("delete", "/api/admin/users/1"),
])
def test_admin_routes_refuse_a_runner_and_an_anonymous_caller(web, admin, runner, api_headers,
                                                              method, path):
    before = features().accounts.list_users()
    body = {"email": "x@example.com", "password": PASSWORD, "is_admin": True}
    call = getattr(web, f"{method}_json") if method in ("post", "patch") else getattr(web, method)
    kwargs = {"params": body} if method in ("post", "patch") else {}
    assert_error(call(path, headers=api_headers(runner), expect_errors=True, **kwargs), 403,
                 mentions=["admin"])
    assert_error(call(path, expect_errors=True, **kwargs), 401)
    assert features().accounts.list_users() == before


def test_admin_creates_an_admin_and_a_runner(web, admin, api_headers):
    headers = api_headers(admin)
    made_admin = web.post_json("/api/admin/users", {"email": "boss@example.com",
                                                    "password": PASSWORD, "is_admin": "true"},
                               headers=headers)
    runner = web.post_json("/api/admin/users", {"email": "r@example.com", "password": PASSWORD,
                                                "age": 30}, headers=headers)
    assert made_admin.status_int == runner.status_int == 201
    assert made_admin.json["is_admin"] is True
    assert (runner.json["is_admin"], runner.json["age"]) == (False, 30)


@pytest.mark.parametrize("body, status, field", [
    ({"email": "n@example.com", "password": PASSWORD, "is_admin": "maybe"}, 400, "is_admin"),
    ({"email": "n@example.com", "password": PASSWORD, "is_admin": 1}, 400, "is_admin"),
    ({"email": "n@example.com", "password": PASSWORD, "is_admin": True, "age": 200}, 400, "age"),
    ({"email": "n@example.com", "is_admin": True}, 400, "password"),
    ({"email": "n@example.com", "password": PASSWORD, "role": "admin"}, 400, "role"),
    ({"email": "ADMIN@example.com", "password": PASSWORD}, 409, "email"),
])
def test_admin_create_refuses_bad_input_and_creates_nobody(web, admin, api_headers, body,
                                                           status, field):
    response = web.post_json("/api/admin/users", body, headers=api_headers(admin),
                             expect_errors=True)
    assert_error(response, status, field=field)
    assert emails() == ["admin@example.com"]


@pytest.mark.parametrize("raw", ["", "[1]", '"x"', "{"])
def test_admin_create_refuses_a_body_that_is_not_an_object(web, admin, api_headers, raw):
    response = web.post("/api/admin/users", raw, headers=api_headers(admin),
                        content_type="application/json", expect_errors=True)
    assert_error(response, 400)
    assert emails() == ["admin@example.com"]


def test_admin_reads_a_user_and_unknown_ids_are_404(web, admin, runner, api_headers):
    headers = api_headers(admin)
    assert web.get(f"/api/admin/users/{runner.id}", headers=headers).json["email"] == \
        runner.email
    for user_id in (999, 2**63, 10**30):
        response = web.get(f"/api/admin/users/{user_id}", headers=headers, expect_errors=True)
        assert_error(response, 404, mentions=["not found"])


# --- admin: PATCH ------------------------------------------------------------------------

def test_admin_patch_changes_profile_and_admin_rights(web, admin, runner, api_headers):
    response = web.patch_json(f"/api/admin/users/{runner.id}",
                              {"last_name": "Lovelace", "is_admin": True},
                              headers=api_headers(admin))
    assert (response.json["last_name"], response.json["is_admin"]) == ("Lovelace", True)
    user = features().accounts.get_user(runner.id)
    assert (user.last_name, user.is_admin, user.first_name) == ("Lovelace", True, "Ada")
    demoted = web.patch_json(f"/api/admin/users/{runner.id}", {"is_admin": False},
                             headers=api_headers(admin))
    assert demoted.json["is_admin"] is False


@pytest.mark.parametrize("body, field", [
    ({"age": 400, "is_admin": True}, "age"),
    ({"first_name": "Grace", "is_admin": "perhaps"}, "is_admin"),
    ({"first_name": "Grace", "is_admin": True, "email": "x@example.com"}, "email"),
    ({"rest_hr": 200, "is_admin": True}, "rest_hr"),
])
def test_admin_patch_is_refused_whole(web, admin, runner, api_headers, body, field):
    before = features().accounts.get_user(runner.id)
    response = web.patch_json(f"/api/admin/users/{runner.id}", body, headers=api_headers(admin),
                              expect_errors=True)
    assert_error(response, 400, field=field)
    assert features().accounts.get_user(runner.id) == before


def test_admin_cannot_remove_their_own_admin_rights(web, admin, api_headers):
    response = web.patch_json(f"/api/admin/users/{admin.id}",
                              {"first_name": "Boss", "is_admin": False},
                              headers=api_headers(admin), expect_errors=True)
    assert_error(response, 409, field="is_admin", mentions=["own admin"])
    user = features().accounts.get_user(admin.id)
    assert (user.is_admin, user.first_name) == (True, "")


def test_admin_patch_of_an_unknown_user_is_404(web, admin, api_headers):
    response = web.patch_json("/api/admin/users/999", {"first_name": "Ghost"},
                              headers=api_headers(admin), expect_errors=True)
    assert_error(response, 404, mentions=["999"])
    assert emails() == ["admin@example.com"]


# --- admin: DELETE -----------------------------------------------------------------------

def test_admin_deletes_a_runner_with_their_runs(web, admin, runner, api_headers):
    features().runs.add_run(runner.id, RunInput.parse({
        "name": "Easy", "distance": 5000, "start_date": "2026-05-01T07:00:00",
        "elapsed_time": 1500}))
    assert web.delete(f"/api/admin/users/{runner.id}", headers=api_headers(admin)).status_int \
        == 204
    assert emails() == ["admin@example.com"]
    response = web.get(f"/api/admin/users/{runner.id}", headers=api_headers(admin),
                       expect_errors=True)
    assert_error(response, 404)


def test_admin_deletes_another_admin_but_not_themself(web, admin, make_user, api_headers):
    other = make_user("admin2@example.com", admin=True)
    headers = api_headers(admin)
    refused = web.delete(f"/api/admin/users/{admin.id}", headers=headers, expect_errors=True)
    assert_error(refused, 409, mentions=["your own account"])
    assert web.delete(f"/api/admin/users/{other.id}", headers=headers).status_int == 204
    assert emails() == ["admin@example.com"]
    assert features().accounts.get_user(admin.id).is_admin is True


def test_admin_delete_of_an_unknown_user_is_404(web, admin, runner, api_headers):
    response = web.delete("/api/admin/users/999", headers=api_headers(admin), expect_errors=True)
    assert_error(response, 404)
    assert emails() == ["admin@example.com", "runner@example.com"]
