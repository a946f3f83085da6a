"""Runnerly's own API tests, unchanged, with its data feature routed by the pytest plugin:
in shadow (every read compared with the data service's answer, none may differ) and in
remote (every call answered by the data service, served in-process). The same harness a
team runs on its own suite (docs/adopting.md, step 5)."""

from __future__ import annotations

import re
import subprocess  # nosec B404
import sys

import pytest
from support import ROOT

SUITE = ["tests/functional/test_api_runs.py", "tests/functional/test_api_accounts.py"]
SERVICE = "runs=extracted.dataservice.app:create_app"


@pytest.mark.parametrize("mode", ["shadow", "remote"])
def test_runnerlys_api_suite_passes_with_runs_in(mode):
    done = subprocess.run(  # nosec B603
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "shims.pytest_plugin", "--turnout-mode", f"runs={mode}", "--turnout-service", SERVICE,
         *SUITE], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcomes = re.search(r"shadow outcomes: (.*)", done.stdout).group(1)
    if mode == "shadow":
        matched = re.fullmatch(r"(\d+) match", outcomes)
        assert matched and int(matched.group(1)) > 100, outcomes
    else:
        assert outcomes == "none"
