"""Turnout's HTML dashboard at /_turnout/ on Runnerly (shims/dashboard): the browser
session decides who sees it (admins only), its forms carry the kit's CSRF token, a refused
advance shows every gate with its numbers, and the JSON API next to it still asks for a
token, saying so in WWW-Authenticate.

No service runs: `reports` in shadow calls a reports service that refuses connections,
which is the evidence that must stop an advance (as in test_gates_admin.py)."""

from __future__ import annotations

import re

import pytest
from webtest import TestApp

from monolith.wiring import control
from shims.extension import state
from shims.shadow import Mismatch
from support import LOOPBACK, PASSWORD, runnerly_app


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "turnout.toml"
    path.write_text('registry = "monolith.wiring:REGISTRY"\n'
                    "[gates]\nwindow = 120\nmin_calls = 3\nmin_comparisons = 3\n"
                    "[guard]\nenabled = false\n")
    return path


@pytest.fixture
def app(tmp_path, project):
    with runnerly_app(tmp_path, PROJECT=str(project)).app_context() as context:
        yield context.app


@pytest.fixture
def web(app):
    return TestApp(app, extra_environ=LOOPBACK)


def log_in(web, user):
    login = web.get("/login")
    login.form["email"], login.form["password"] = user.email, PASSWORD
    login.form.submit().follow()


@pytest.fixture
def admin_web(web, make_user):
    log_in(web, make_user("boss@example.com", admin=True))
    return web


def move_form(page, feature, move):
    (form,) = [f for f in page.forms.values()
               if f.action.endswith(f"/_turnout/dashboard/{feature}/{move}")]
    return form


def section(page, feature) -> str:
    found = re.search(rf'<section class="feature" id="feature-{feature}".*?</section>',
                      page.text, re.S)
    assert found, f"no panel for {feature}"
    return found.group(0)


def test_anonymous_browsers_are_sent_to_log_in_and_runners_are_refused(web, make_user):
    anonymous = web.get("/_turnout/")
    assert anonymous.status_int == 303
    assert anonymous.location.endswith("/login?next=/_turnout/")
    log_in(web, make_user("runner@example.com"))
    refused = web.get("/_turnout/", expect_errors=True)
    assert refused.status_int == 403 and refused.content_type == "text/html"
    assert "Only admins may see this page" in refused.text
    assert "runner@example.com" in refused.text


def test_an_admin_sees_every_feature_with_its_stage_and_figures(admin_web):
    admin_web.get("/runs")  # the runs feature answers a call locally
    control().flusher.flush()
    page = admin_web.get("/_turnout/")
    assert page.status_int == 200 and "boss@example.com" in page.text
    for feature in ("runs", "strava", "reports", "races"):
        assert 'data-stage>local<' in section(page, feature)
    runs = section(page, "runs")
    assert re.search(r"<td>local</td><td class=\"num\">[1-9]", runs), runs[:2000]
    assert runs.count('<svg class="chart"') == 3 and "<polyline" in runs
    assert "Never moved" in runs
    csp = page.headers["Content-Security-Policy"]
    assert "script-src" not in csp or "'unsafe-inline'" not in csp
    assert "style=" not in page.text  # the CSP allows no inline style
    css = admin_web.get(page.html.find("link", rel="stylesheet")["href"])
    assert css.content_type == "text/css" and "svg.chart" in css.text


def test_a_form_without_the_kits_token_changes_nothing(admin_web):
    page = admin_web.get("/_turnout/")
    form = move_form(page, "reports", "advance")
    form["turnout_csrf"] = "forged"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400 and "security token" in refused.text
    missing = admin_web.post("/_turnout/dashboard/reports/advance", expect_errors=True)
    assert missing.status_int == 400
    assert control().store.snapshot().flag("reports").mode == "local"


def test_an_advance_moves_a_stage_and_a_refused_one_shows_every_gate(admin_web):
    moved = move_form(admin_web.get("/_turnout/"), "reports", "advance").submit()
    assert moved.status_int == 303
    page = moved.follow()
    assert "reports advanced to shadow" in page.text
    assert 'data-stage>shadow<' in section(page, "reports")
    for _ in range(4):  # every shadow fails: the service is not there
        admin_web.get("/reports?year=2026&month=5", expect_errors=True)
    state().drain_shadows()
    control().flusher.flush()
    refused = move_form(admin_web.get("/_turnout/"), "reports", "advance").submit(
        expect_errors=True)
    assert refused.status_int == 422
    refusal = refused.html.find(id="refusal").get_text(" ", strip=True)
    assert "shadow → canary 5%" in refusal
    assert re.search(r"shadow_comparisons failed 0 3", refusal), refusal
    assert "remote_error_rate failed" in refusal
    assert control().store.snapshot().flag("reports").mode == "shadow"
    back = move_form(refused, "reports", "rollback").submit().follow()
    assert 'data-stage>local<' in section(back, "reports")
    history = [(e.actor, e.old, e.new) for e in control().store.history("reports")]
    assert history == [("boss@example.com", "shadow", "local"),
                       ("boss@example.com", "local", "shadow")]


def test_forcing_needs_a_reason_and_is_audited_with_it(admin_web):
    move_form(admin_web.get("/_turnout/"), "reports", "advance").submit()
    form = move_form(admin_web.get("/_turnout/"), "reports", "advance")
    form["force"] = True
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400 and "force needs a reason" in refused.text
    form = move_form(refused, "reports", "advance")
    form["force"], form["reason"] = True, "rehearsal"
    form.submit().follow()
    (entry, *_) = control().store.history("reports")
    assert (entry.actor, entry.new) == ("boss@example.com (forced past gates: rehearsal)",
                                        "canary 5%")
    assert "forced past gates: rehearsal" in section(admin_web.get("/_turnout/"), "reports")


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/_turnout/dashboard/billing/advance", 400, "unknown feature 'billing'"),
    ("/_turnout/dashboard/races/advance", 409, "races has no remote side"),
    ("/_turnout/dashboard/reports/rollback", 409, "nothing to roll back to"),
])
def test_bad_moves_are_refused_naming_what_is_wrong(admin_web, path, status, words):
    token = move_form(admin_web.get("/_turnout/"), "reports", "advance")["turnout_csrf"].value
    refused = admin_web.post(path, {"turnout_csrf": token}, expect_errors=True)
    assert refused.status_int == status
    assert words in refused.html.find(id="refusal").get_text()


def test_a_recorded_mismatch_is_shown_side_by_side_its_differing_paths_marked(admin_web):
    control().mismatches.record(Mismatch(
        "reports", "reports.monthly", "local", {"total_km": 42.0, "runs": 3, "month": 5},
        {"total_km": 41.5, "runs": 3, "month": 5}, ("$.total_km",)))
    reports = admin_web.get("/_turnout/").html.find(id="feature-reports")
    differing = [[td.get_text() for td in tr.find_all("td")]
                 for tr in reports.select("table.diff tr.differs")]
    assert differing == [["$.total_km", "42.0", "41.5"]]
    same = [tr.find("td").get_text() for tr in reports.select("table.diff tr.same")]
    assert same == ["$.runs", "$.month"]


def test_the_json_api_asks_a_browser_for_a_bearer_token(admin_web):
    refused = admin_web.get("/_turnout/flags", expect_errors=True)  # the session is not enough
    assert refused.status_int == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="turnout admin"'
