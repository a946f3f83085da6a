"""docs/adopting.md, run: every command of its `sh` blocks, in order, on a copy of
examples/bookshop as it was before `turnout new-service` (step 4), with the guide's ports
swapped for free ones. Each must exit 0 (the guide's `grep`s are its assertions); the
stack it starts is always stopped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404
import sys
from pathlib import Path

import pytest
from support import ROOT, free_port

GUIDE = ROOT / "docs" / "adopting.md"
BOOKSHOP = ROOT / "examples" / "bookshop"
# The guide's ports: the bookshop and the catalog service (circusd's endpoint is a unix
# socket in the run directory).
PORTS = ("5100", "5110")

pytestmark = pytest.mark.integration


def commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def before_extraction(target: Path) -> Path:
    """The bookshop with its catalog behind a contract, registered, and no service yet."""
    shutil.copytree(BOOKSHOP, target, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", "run", "*.db"))
    shutil.rmtree(target / "catalog_service")
    (target / "tests" / "test_catalog_contract.py").unlink()
    circus = (target / "circus.ini").read_text()
    (target / "circus.ini").write_text(circus[:circus.index("\n# The catalog service")] + "\n")
    return target


def test_the_guide_has_the_steps_it_promises():
    found = commands()
    for expected in ("turnout new-service catalog", "--turnout-mode catalog=shadow",
                     "turnout up", "turnout flags set catalog remote", "turnout flags kill",
                     "turnout down"):
        assert any(expected in command for command in found), expected


def test_every_command_of_the_guide_works_in_order(reachable_tmp):
    project = before_extraction(reachable_tmp / "bookshop")
    ports = {port: str(free_port()) for port in PORTS}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "BOOKSHOP_PORT": ports["5100"]}
    env.pop("TURNOUT_RUN_DIR", None)
    ran = []
    try:
        for command in commands():
            for old, new in ports.items():
                command = command.replace(old, new)
            done = subprocess.run(["bash", "-c", command], cwd=project, env=env,  # nosec B603
                                  capture_output=True, text=True, timeout=240, check=False)
            ran.append(command)
            assert done.returncode == 0, (f"step {len(ran)} failed: {command}\n"
                                          f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            if "--turnout-mode catalog=shadow" in command:
                assert re.search(r"shadow outcomes: \d+ match\b", done.stdout), done.stdout
    finally:
        subprocess.run(["bash", "-c", "turnout down"], cwd=project, env=env,  # nosec B603
                       capture_output=True, timeout=120, check=False)
    assert len(ran) == len(commands())
