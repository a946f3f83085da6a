"""Turnout's dashboard in a real browser (headless Chromium through Selenium) on a real
stack under circusd: an admin logs in through Runnerly's login page, sees every feature's
stage and figures after some traffic, a real shadow mismatch as a side-by-side diff,
advances a stage its gates pass, is refused one they do not (the page gives the numbers)
and rolls back.

The browser is Debian's chromium and chromedriver (scripts/bootstrap.sh installs them as
root); Selenium is handed both paths, so Selenium Manager downloads nothing. Without them
the test skips, saying why, except under TURNOUT_REQUIRE_SERVICES=1 (CI), where it fails.
With TURNOUT_SCREENSHOT_DIR set, the screenshots are kept there (docs/img/dashboard.png is
one of them).

The mismatch is made as a real one would be: `runs` in shadow, one run renamed in the
data service's own database behind the mirror's back, then read.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from support import ROOT, eventually, service_or_skip
from test_faults import dual_writes, set_flags

from scripts.demo_data import ADMIN_EMAIL, ADMIN_PASSWORD, DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
STACK_ENV = {"TURNOUT_EVIDENCE_BUCKET_SECONDS": "2", "TURNOUT_EVIDENCE_FLUSH_SECONDS": "1",
             "TURNOUT_HOME": str(ROOT)}
# Gates a short test can pass with honest traffic; a loaded test machine's latency is not
# what this test is about, so the p99 ratio is generous.
GATES = """
[gates]
window = 60
min_comparisons = 5
min_calls = 5
max_p99_ratio = 1000

[guard]
enabled = false
"""
RENAMED = " (renamed on the service)"


@pytest.fixture(scope="module", autouse=True)
def dashboard_project():
    directory = Path(tempfile.mkdtemp(prefix="turnout-dashboard-project-"))
    directory.chmod(0o755)  # run as root, the app user reads it
    path = directory / "turnout.toml"
    text = (ROOT / "turnout.toml").read_text().replace(
        'circus = "circus.ini"', f'circus = "{ROOT / "circus.ini"}"')
    text = text.split("\n[gates]")[0] + GATES  # the test's gates and guard replace Runnerly's
    path.write_text(text)
    path.chmod(0o644)
    STACK_ENV["TURNOUT_PROJECT"] = str(path)
    yield path
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        service_or_skip("Chromium", f"{CHROMIUM} or {CHROMEDRIVER} is missing (as root: "
                        "apt-get install chromium chromium-driver, or scripts/bootstrap.sh)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        service_or_skip("Selenium", f"it is not installed ({exc}); pip install -r "
                        "requirements.txt")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,2400", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> Path:
    """Kept in TURNOUT_SCREENSHOT_DIR when set (docs/img/), else beside the test's tmp."""
    directory = Path(os.environ.get("TURNOUT_SCREENSHOT_DIR") or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    return path


def panel(driver, feature: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, f"feature-{feature}")


def stage_of(driver, feature: str) -> str:
    from selenium.webdriver.common.by import By

    return panel(driver, feature).find_element(By.CSS_SELECTOR, "[data-stage]").text


def press(driver, feature: str, move: str, *, reason: str | None = None) -> None:
    """Submits the feature's form and waits for the next page (the move may drain)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    form = panel(driver, feature).find_element(By.CSS_SELECTOR, f"form.{move}")
    if reason is not None:
        form.find_element(By.NAME, "force").click()
        form.find_element(By.NAME, "reason").send_keys(reason)
    page = driver.find_element(By.TAG_NAME, "html")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))


def log_in(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/_turnout/")
    assert "/login" in driver.current_url, driver.current_url  # sent to Runnerly's page
    driver.find_element(By.NAME, "email").send_keys(ADMIN_EMAIL)
    driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    eventually(lambda: driver.current_url.endswith("/_turnout/"), "back on the dashboard")


def evidence(url: str, feature: str) -> dict:
    answer = requests.get(f"{url}/_turnout/evidence", params={"feature": feature,
                                                              "window": 60},
                          auth=(ADMIN_EMAIL, ADMIN_PASSWORD), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["features"][0]["evidence"]["60"]


def read_as_demo(url: str, path: str, times: int) -> None:
    for _ in range(times):
        answer = requests.get(f"{url}{path}", auth=(DEMO_EMAIL, DEMO_PASSWORD), timeout=10)
        assert answer.status_code == 200, answer.text


def rename_on_the_service(stack) -> int:
    """The data service's newest run renamed in its own database (no outbox, no mirror):
    what a bug on one side looks like. As the file's owner (the app user, when run as
    root), so no file of the database ends up owned by root."""
    database = stack.run_dir / "dataservice.db"
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=15); "
              "i = c.execute('SELECT max(id) FROM runs').fetchone()[0]; "
              "c.execute('UPDATE runs SET name = name || ? WHERE id = ?', (sys.argv[2], i)); "
              "c.commit(); print(i)")
    command = [sys.executable, "-c", script, str(database), RENAMED]
    owner = pwd.getpwuid(database.stat().st_uid).pw_name
    if os.geteuid() == 0 and owner != "root":
        command = ["runuser", "-u", owner, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    return int(done.stdout.strip())


def test_an_admin_reads_the_figures_and_moves_stages_in_a_browser(stack, browser):
    from selenium.webdriver.common.by import By

    url = stack.monolith
    log_in(browser, url)
    for feature in ("runs", "strava", "reports", "races"):
        assert stage_of(browser, feature) == "local"

    press(browser, "reports", "advance")  # local -> shadow: no gate applies yet
    assert stage_of(browser, "reports") == "shadow"
    assert "reports advanced to shadow" in browser.page_source

    dual_writes(stack)  # runs: both sides written, the history copied
    set_flags(stack, ("runs", "shadow"))
    renamed = rename_on_the_service(stack)
    today = dt.date.today()
    read_as_demo(url, f"/api/reports/monthly?year={today.year}&month={today.month}", 12)
    read_as_demo(url, f"/api/runs/{renamed}", 8)
    eventually(lambda: evidence(url, "reports")["shadow"]["compared"] >= 5
               and evidence(url, "runs")["shadow"]["persistent"] >= 1,
               "every worker's evidence reaches the store", timeout=30)

    browser.get(f"{url}/_turnout/")
    reports = panel(browser, "reports")
    minute = reports.find_element(By.CSS_SELECTOR, '[data-window="60"]')
    remote_calls = int(minute.find_elements(By.CSS_SELECTOR, "table.sides tr")[2]
                       .find_elements(By.TAG_NAME, "td")[1].text)
    assert remote_calls >= 5
    assert "compared" in minute.text and "100.00%" in minute.text
    diff = panel(browser, "runs").find_element(By.CSS_SELECTOR, "details.mismatch table.diff")
    differing = [row.text for row in diff.find_elements(By.CSS_SELECTOR, "tr.differs")]
    assert any(".name" in row and RENAMED.strip() in row for row in differing), differing
    assert diff.find_elements(By.CSS_SELECTOR, "tr.same")  # the agreeing fields beside it
    screenshot(browser, "dashboard")

    press(browser, "reports", "advance")  # shadow -> canary 5 %: its gates pass
    assert stage_of(browser, "reports") == "canary 5%", browser.find_element(
        By.TAG_NAME, "main").text[:1500]

    press(browser, "runs", "advance")  # shadow -> canary: the mismatch refuses it
    refusal = browser.find_element(By.ID, "refusal").text
    assert "shadow → canary" in refusal
    assert "shadow_mismatch_rate failed" in refusal, refusal
    assert stage_of(browser, "runs") == "shadow"
    screenshot(browser, "dashboard-refused")

    press(browser, "runs", "rollback")
    assert stage_of(browser, "runs") == "dualwrite"
    history = panel(browser, "runs").find_element(By.CSS_SELECTOR, "table.history").text
    assert f"shadow dualwrite {ADMIN_EMAIL}" in history
    set_flags(stack, ("runs", "local"), ("reports", "local"))
