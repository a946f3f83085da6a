"""What a browser may do with the monolith's pages (monolith/headers.py) and its cookies."""

import re
from pathlib import Path

import pytest
from webtest import TestApp

from support import LOOPBACK, PASSWORD, ROOT

HTML_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "Referrer-Policy")


def login(web, user):
    form = web.get("/login").forms["login"]
    form["email"], form["password"] = user.email, PASSWORD
    return form.submit()


@pytest.mark.parametrize("path, status", [("/", 200), ("/login", 200), ("/signup", 200),
                                          ("/no-such-page", 404), ("/runs", 302)])
def test_every_html_response_carries_the_security_headers(web, path, status):
    response = web.get(path, status=status)
    if status != 302:
        assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_logged_in_page_and_an_error_page_carry_them(web, make_user):
    login(web, make_user())
    for response in (web.get("/profile"), web.post("/logout", status=400)):
        assert all(name in response.headers for name in HTML_HEADERS)


def test_json_answers_are_not_sniffed_and_carry_no_page_policy(web):
    response = web.get("/api/me", status=401)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers


def test_the_templates_need_no_inline_script_or_style():
    """The policy forbids inline code; a template adding some would break silently."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.I)
    templates = sorted(Path(ROOT, "monolith", "templates").rglob("*.html"))
    assert templates
    offenders = [str(p) for p in templates if inline.search(p.read_text())]
    assert offenders == []


def session_cookie(response) -> str:
    [cookie] = [v for v in response.headers.getall("Set-Cookie") if v.startswith("session=")]
    return cookie


def test_the_session_cookie_is_samesite_lax_and_http_only(web, make_user):
    cookie = session_cookie(login(web, make_user()))
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back


def test_the_session_cookie_is_secure_over_tls(web):
    # The login form's CSRF token starts the session: its cookie is set on this GET.
    cookie = session_cookie(web.get("/login", extra_environ={"wsgi.url_scheme": "https"}))
    assert "Secure" in cookie and "SameSite=Lax" in cookie


def test_a_setting_makes_it_secure_behind_a_tls_proxy(app):
    def fresh_browser():  # a context per request: Flask-WTF caches its token in `g`
        def isolated(environ, start_response):
            with app.app_context():
                return app(environ, start_response)
        return TestApp(isolated, extra_environ=LOOPBACK)

    assert "Secure" not in session_cookie(fresh_browser().get("/login"))
    app.config["SESSION_COOKIE_SECURE"] = True
    assert "Secure" in session_cookie(fresh_browser().get("/login"))
