"""The kit installs alone: in a fresh virtualenv, installing this repository puts `shims` and
the `turnout` command there and nothing of Runnerly (issue 9: `import scripts` resolved to
Turnout's in a team's environment).

Kept fast: the project is installed with `--no-deps` (its dependencies are read from its
metadata instead of installed), from a copy of the checkout, so no build output lands in
the working tree. Building needs setuptools and wheel, which pip fetches from PyPI into its
isolated build environment (or takes from its cache).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

RUNNERLY = ("monolith", "extracted", "contracts", "scripts", "stravadev")
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".tox", "run", "build", "dist",
                                     "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache")


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh virtualenv with the kit installed from a copy of this checkout."""
    where = tmp_path_factory.mktemp("packaging")
    source = where / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    made = run(sys.executable, "-m", "venv", where / "venv", cwd=where)
    assert made.returncode == 0, made.stderr
    python = where / "venv" / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--disable-pip-version-check", source, cwd=where)
    if installed.returncode != 0 and "from versions: none" in installed.stderr:
        pytest.skip(f"pip could not fetch the build requirements: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr
    return where / "venv", where


def test_pip_lists_the_kit_and_nothing_of_runnerly(venv):
    env_dir, elsewhere = venv
    python = env_dir / "bin" / "python"
    listed = json.loads(run(python, "-m", "pip", "list", "--format", "json",
                            cwd=elsewhere).stdout)
    assert "turnout" in {package["name"] for package in listed}
    shown = run(python, "-m", "pip", "show", "--files", "turnout", cwd=elsewhere).stdout
    files = shown.split("Files:", 1)[1].split()
    top_level = {Path(name).parts[0] for name in files if not name.startswith("..")}
    # A wheel install writes dist-info; an older pip without `wheel` (Debian's python3.11
    # venv, pip 23.0) installs the legacy way and writes egg-info: both are the kit alone.
    metadata = top_level - {"shims"}
    assert metadata in ({"turnout-0.1.0.dist-info"}, {"turnout-0.1.0.egg-info"}), top_level
    assert any(name.endswith("bin/turnout") for name in files)
    # The dashboard's pages and stylesheet travel with the kit (setup.py's package_data).
    assert {"shims/dashboard/templates/turnout_dashboard/page.html",
            "shims/dashboard/templates/turnout_dashboard/denied.html",
            "shims/dashboard/static/dashboard.css"} <= set(files)
    assert (env_dir / "bin" / "turnout").exists()


def test_nothing_of_runnerly_imports_outside_the_checkout(venv):
    env_dir, elsewhere = venv
    probe = ("import importlib.util, json; "
             f"print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in "
             f"{(*RUNNERLY, 'shims', 'shims.cli')!r}}}))")
    found = json.loads(run(env_dir / "bin" / "python", "-c", probe, cwd=elsewhere).stdout)
    assert found == {**dict.fromkeys(RUNNERLY, False), "shims": True, "shims.cli": True}


def test_the_console_script_and_the_metadata(venv):
    env_dir, elsewhere = venv
    # `turnout --help` answers before anything beyond the standard library is imported: here
    # no dependency is installed at all.
    helped = run(env_dir / "bin" / "turnout", "--help", cwd=elsewhere)
    assert helped.returncode == 0, helped.stderr
    assert "usage: turnout" in helped.stdout and "--project FILE" in helped.stdout
    probe = ("import importlib.metadata as m, json; "
             "print(json.dumps({'requires': m.requires('turnout'), 'scripts': "
             "[e.value for e in m.entry_points(group='console_scripts', name='turnout')]}))")
    metadata = json.loads(run(env_dir / "bin" / "python", "-c", probe, cwd=elsewhere).stdout)
    assert metadata["scripts"] == ["shims.cli:main"]
    names = {requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].split(";")[0]
             .strip().lower() for requirement in metadata["requires"]}
    assert {"flask", "sqlalchemy", "gevent", "circus"} <= names
