"""A monolith that is not Runnerly adopts the kit: examples/bookshop.

It is a small Flask-SQLAlchemy app with its own tests. Its catalog feature went behind
a contract, its service was written by `turnout new-service catalog`, and its own suite
must stay green with the catalog in every mode, through the pytest plugin. In shadow
and live modes, comparisons must actually be made.
"""

from __future__ import annotations

import os
import re
import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest

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
