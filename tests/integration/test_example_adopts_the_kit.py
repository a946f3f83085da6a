"""A monolith that is not Runnerly adopts the kit: examples/bookshop.

It is a small Flask-SQLAlchemy app with its own tests. Its catalog feature went behind
a contract, its service was written by `turnout new-service catalog`, and its own suite
must stay green with the catalog in every mode, through the pytest plugin. In shadow
and live modes, comparisons must actually be made.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest
import requests
from support import free_port

BOOKSHOP = Path(__file__).resolve().parents[2] / "examples" / "bookshop"
COMPARED = {"shadow", "live"}


def run_suite(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # nosec B603
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:requests_mock", "-p", "shims.pytest_plugin", *options],
        cwd=BOOKSHOP, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.parametrize("mode", ["local", "dualwrite", "shadow", "canary:50", "live",
                                  "rampdown", "remote"])
def test_the_bookshops_own_suite_passes_with_its_catalog_in_each_mode(mode):
    result = run_suite("--turnout-mode", f"catalog={mode}",
                       "--turnout-service", "catalog=catalog_service.app:create_app")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = re.search(r"shadow outcomes: (.*)", result.stdout).group(1)
    if mode in COMPARED:
        matched = re.match(r"(\d+) match$", summary)
        assert matched and int(matched.group(1)) > 0, summary  # compared, all matched
    else:
        assert summary == "none"


def test_a_service_that_answers_differently_fails_the_bookshops_suite(tmp_path):
    """The harness can fail: a catalog service that loses the author is caught in shadow."""
    (tmp_path / "lossy.py").write_text(
        "from catalog_service.app import create_app as real\n\n\n"
        "def create_app(config):\n"
        "    app = real(config)\n"
        "    wrapped = app.wsgi_app\n\n"
        "    def lose_authors(environ, start_response):\n"
        "        body = b''.join(wrapped(environ, start_response))\n"
        "        return [body.replace(b'Frank Herbert', b'Anonymous')]\n"
        "    app.wsgi_app = lose_authors\n"
        "    return app\n")
    result = subprocess.run(  # nosec B603
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "no:requests_mock", "-p", "shims.pytest_plugin", "--turnout-mode", "catalog=shadow",
         "--turnout-service", "catalog=lossy:create_app"],
        cwd=BOOKSHOP, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, result.stdout[-3000:]
    assert "mismatch at $.result" in result.stdout


TOKEN_WATCHER = """
[socket:tokendealer]
host = 127.0.0.1
port = $(circus.env.TOKENDEALER_PORT)

[watcher:tokendealer]
cmd = $(circus.env.TURNOUT_PYTHON) -m gunicorn
args = -k gevent -w 1 --no-control-socket -b fd://$(circus.sockets.tokendealer)
    shims.tokendealer.wsgi:app
working_dir = $(circus.env.TURNOUT_HOME)
use_sockets = True
uid = $(circus.env.TURNOUT_PROCESS_UID)
gid = $(circus.env.TURNOUT_PROCESS_GID)
copy_env = True
"""

TOKENS_TOML = """registry = "bookshop.turnout_glue:REGISTRY"
circus = "circus.ini"

[env]
BOOKSHOP_DATABASE_URI = "sqlite:///${{TURNOUT_RUN_DIR}}/bookshop.db"
BOOKSHOP_PORT = {bookshop}
TOKENDEALER_PORT = {dealer}
TURNOUT_TOKEN_URL = "http://127.0.0.1:${{TOKENDEALER_PORT}}/oauth/token"
TURNOUT_TOKEN_JWKS_URL = "http://127.0.0.1:${{TOKENDEALER_PORT}}/.well-known/jwks.json"

[hooks]
before_up = "bookshop_tokens:before_up"
"""

HOOK = """from shims.tokendealer.secrets import ensure, scopes


def before_up(run_dir):
    ensure(run_dir, {"bookshop": {"catalog": scopes("catalog")}})
"""


def test_service_tokens_are_turned_on_later_without_a_code_change(reachable_tmp):
    """Configuration only: the kit's token dealer as a watcher, a before_up hook writing
    who may call whom, the bookshop's secret file, SERVICE_TOKENS no longer off. The
    bookshop's and the catalog service's code stay as they are."""
    project = reachable_tmp / "bookshop"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", "run", "*.db"))
    ports = {"bookshop": free_port(), "dealer": free_port(),
             "catalog": free_port()}
    circus = (project / "circus.ini").read_text()
    circus = circus.replace("port = 5110", f"port = {ports['catalog']}").replace(
        "[env:bookshop]\n", "[env:bookshop]\nTURNOUT_CLIENT_ID = bookshop\n"
        "TURNOUT_CLIENT_SECRET_FILE = $TURNOUT_RUN_DIR/secrets/bookshop\n")
    (project / "circus.ini").write_text(circus + TOKEN_WATCHER)
    (project / "turnout.toml").write_text(TOKENS_TOML.format(**ports))
    (project / "bookshop_tokens.py").write_text(HOOK)
    code_before = {p.relative_to(project): p.read_text() for p in project.rglob("*.py")
                   if p.name != "bookshop_tokens.py"}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("TURNOUT_TOKEN_JWKS_URL", None)  # the tests' own key set: not this dealer's

    def turnout(*args: str) -> str:
        done = subprocess.run(["turnout", *args], cwd=project, env=env,  # nosec B603 B607
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, f"turnout {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    shop, catalog = (f"http://127.0.0.1:{ports[name]}" for name in ("bookshop", "catalog"))
    turnout("up", "--wait", "90")
    try:
        turnout("flags", "set", "catalog", "remote")
        added = requests.post(f"{shop}/books", json={"title": "Emma", "author": "Austen"},
                              timeout=30)
        assert added.status_code == 201, added.text
        listed = requests.get(f"{shop}/books", timeout=30)
        assert listed.headers["X-Turnout-Route"] == "catalog.list_books=remote"
        assert [book["title"] for book in listed.json()] == ["Emma"]
        unsigned = requests.post(f"{catalog}/rpc/catalog/list_books", json={"args": {}},
                                 timeout=30)
        assert unsigned.status_code == 401  # the service now asks every caller for a token
    finally:
        turnout("down")
    assert {p.relative_to(project): p.read_text() for p in project.rglob("*.py")
            if p.name != "bookshop_tokens.py" and "run" not in p.parts} == code_before
