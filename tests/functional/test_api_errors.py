"""Errors across the whole JSON API: always JSON, always the right status, never a traceback."""

import pytest

from monolith.wiring import features


def assert_error(response, status, *, code=None, mentions=()):
    assert response.status_int == status, response.body
    assert response.content_type == "application/json"
    body = response.json
    assert set(body) <= {"error", "message", "field", "errors"}
    if "errors" in body:  # every problem; the first is the top level's (docs/api.md)
        assert body["errors"][0] == {key: body[key] for key in ("field", "message") if key in body}
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str) and body["message"]
    if code is not None:
        assert body["error"] == code
    for word in mentions:
        assert word in body["message"], body
    return body


@pytest.mark.parametrize("path", ["/api/nope", "/api/runs/abc", "/api/runs/-1", "/api/",
                                  "/api", "/api/races/1/plan/x"])
def test_unknown_api_paths_are_404_json(web, path):
    assert_error(web.get(path, expect_errors=True), 404, code="not_found",
                 mentions=["not found"])


def test_unknown_html_path_is_not_json(web):
    response = web.get("/no-such-page", expect_errors=True)
    assert response.status_int == 404
    assert response.content_type == "text/html"


@pytest.mark.parametrize("method, path, allowed", [
    ("delete", "/api/users", "POST"),
    ("get", "/api/tokens", "POST"),
    ("post", "/api/me", "PATCH"),
    ("patch", "/api/runs", "POST"),
    ("put", "/api/admin/users/1", "PATCH"),
    ("get", "/api/races/1/join", "POST"),
    ("get", "/api/admin/strava/import", "POST"),
])
def test_wrong_method_is_405_json_with_allow(web, method, path, allowed):
    response = getattr(web, method)(path, expect_errors=True)
    assert_error(response, 405, code="method_not_allowed", mentions=["method"])
    assert allowed in response.headers["Allow"]


def test_body_too_large_is_413_json_and_nobody_is_created(web):
    raw = '{"email": "big@example.com", "password": "' + "p" * (1024 * 1024) + '"}'
    response = web.post("/api/users", raw, content_type="application/json", expect_errors=True)
    assert_error(response, 413, code="request_entity_too_large")
    assert features().accounts.list_users() == []


def test_a_body_just_under_the_limit_is_read(web):
    raw = '{"email": "big@example.com", "password": "' + "p" * (1024 * 1000) + '"}'
    response = web.post("/api/users", raw, content_type="application/json", expect_errors=True)
    # read and validated, not refused for size
    assert_error(response, 400, mentions=["password", "at most 200"])


def test_an_unexpected_error_is_a_json_500_without_details(app, web, make_user, api_headers,
                                                           monkeypatch):
    user = make_user()
    headers = api_headers(user)

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")
    monkeypatch.setattr(features().runs, "list_runs", explode)
    response = web.get("/api/runs?year=2026&month=5", headers=headers, expect_errors=True)
    body = assert_error(response, 500, code="internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "logged" in body["message"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain",
                                          "application/x-www-form-urlencoded"])
def test_the_body_is_read_as_json_whatever_its_content_type(web, content_type):
    raw = '{"email": "ct@example.com", "password": "correct-horse-9"}'
    response = web.post("/api/users", raw, content_type=content_type)
    assert response.status_int == 201
    assert [user.email for user in features().accounts.list_users()] == ["ct@example.com"]


def test_no_content_responses_have_no_body_and_no_content_type(web, make_user, api_headers):
    user = make_user()
    run = web.post_json("/api/runs", {"name": "r", "distance": 5000, "elapsed_time": 1500,
                                      "start_date": "2026-05-01T07:00:00"},
                        headers=api_headers(user)).json
    response = web.delete(f"/api/runs/{run['id']}", headers=api_headers(user))
    assert response.status_int == 204
    assert response.body == b"" and "Content-Type" not in response.headers
