"""The kit's dependencies as pip sees them (the installed `turnout` distribution's metadata):
what shims/ imports is declared, each declared dependency is installed in a version it
allows, and the floors are the versions `tox -e lowest` tests (tests/lowest-constraints.txt).
Under `tox -e lowest` (TURNOUT_LOWEST_CONSTRAINTS set), also: each dependency sits at its
floor, and nothing only Runnerly needs is installed."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tests" / "lowest-constraints.txt"
LOWEST = os.environ.get("TURNOUT_LOWEST_CONSTRAINTS")  # set by tox -e lowest
KIT_PACKAGES = ("shims",)
# Declared for the `turnout` command and circus.ini's watchers, not imported by shims/.
NOT_IMPORTED = {"circus", "psutil", "gunicorn"}
# Imported by shims/pytest_plugin.py, which only pytest itself loads: the host, not a need.
HOSTED = {"pytest"}
RUNNERLY_ONLY = {"flask-login", "flask-wtf", "wtforms", "psycopg", "psycopg-binary"}
RUNNERLY_PACKAGES = {"monolith", "extracted", "contracts", "stravadev", "scripts"}

only_lowest = pytest.mark.skipif(not LOWEST, reason="checked under tox -e lowest only")


def declared() -> dict[str, Requirement]:
    """The installed kit's own requirements by normalised name, its extras' included: tox -e
    lowest installs the extras too, at their floors."""
    try:
        lines = metadata.requires("turnout") or []
    except metadata.PackageNotFoundError:
        pytest.skip("the kit is not installed in this environment (pip install -e .)")
    extras = metadata.metadata("turnout").get_all("Provides-Extra") or []
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in requirements
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras)}


def floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert floors, f"{requirement} has no floor (>=): the lowest env cannot pin it"
    return max(floors)


def pins() -> dict[str, Version]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{CONSTRAINTS.name}: {line!r} is not name==version"
            found[canonicalize_name(name)] = Version(version)
    return found


def imported_distributions() -> dict[str, set[str]]:
    """Each distribution whose modules the kit imports (at the top or inside a function),
    with the kit's files that import it."""
    providers = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for package in KIT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    # `from opentelemetry import trace`: the submodule names the provider
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".", 1)[0]
                    if top in sys.stdlib_module_names or top in KIT_PACKAGES:
                        continue
                    for distribution in providers_of(name, providers.get(top, [])) or [
                            f"<nothing provides {top}>"]:
                        found.setdefault(canonicalize_name(distribution), set()).add(
                            str(path.relative_to(ROOT)))
    return found


def providers_of(module: str, candidates: list[str]) -> list[str]:
    """The distributions that provide `module` (or what it is an attribute of). A namespace
    package (`opentelemetry`) has many: the one holding the longest part of the module's
    path is the provider."""
    if len(candidates) <= 1:
        return candidates
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = "/".join(parts[:length])
        owners = [name for name in candidates if _holds(name, prefix)]
        if owners:
            return owners
    return []


def _holds(distribution: str, prefix: str) -> bool:
    return any(path == prefix + ".py" or path.startswith(prefix + "/")
               for path in _files(distribution))


_FILES: dict[str, list[str]] = {}


def _files(distribution: str) -> list[str]:
    if distribution not in _FILES:
        _FILES[distribution] = [str(file) for file in metadata.files(distribution) or []]
    return _FILES[distribution]


def test_what_the_kit_imports_is_declared_and_what_it_declares_is_used():
    requirements = declared()
    undeclared = {name: sorted(files) for name, files in imported_distributions().items()
                  if name not in requirements and name not in HOSTED}
    assert not undeclared, f"imported but not in setup.py's install_requires: {undeclared}"
    unused = set(requirements) - set(imported_distributions()) - NOT_IMPORTED
    assert not unused, f"declared but never imported by {KIT_PACKAGES}: {sorted(unused)}"


def test_importing_the_whole_kit_imports_no_runnerly_package():
    """In a fresh interpreter, from the repository (where Runnerly can be found too)."""
    script = ("import importlib, json, pkgutil, sys\n"
              f"for package in {KIT_PACKAGES!r}:\n"
              "    module = importlib.import_module(package)\n"
              "    for found in pkgutil.walk_packages(module.__path__, package + '.'):\n"
              "        if not found.name.endswith('.__main__'):  # that one runs the command\n"
              "            importlib.import_module(found.name)\n"
              "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not set(json.loads(done.stdout)) & RUNNERLY_PACKAGES


def test_every_dependency_is_installed_in_a_version_it_allows():
    for name, requirement in declared().items():
        installed = metadata.version(name)
        assert requirement.specifier.contains(installed, prereleases=True), \
            f"{name} {installed} is installed; the kit declares {requirement}"


def test_the_lowest_env_pins_every_dependency_at_its_floor():
    pinned = pins()
    for name, requirement in declared().items():
        assert name in pinned, f"{CONSTRAINTS.name} does not pin {name} ({requirement})"
        assert pinned[name] == floor(requirement), \
            f"{CONSTRAINTS.name} pins {name}=={pinned[name]}; setup.py's floor is {requirement}"


@only_lowest
def test_each_dependency_is_installed_at_its_floor():
    for name, requirement in declared().items():
        installed = Version(metadata.version(name))
        assert installed == floor(requirement), \
            f"{name} {installed} is installed, not the floor of {requirement}: pip went past it"


@only_lowest
def test_nothing_only_runnerly_needs_is_installed():
    installed = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions()}
    assert not installed & RUNNERLY_ONLY


@only_lowest
def test_the_installed_kit_holds_no_runnerly_package():
    files = metadata.files("turnout") or []
    top_level = {Path(str(file)).parts[0] for file in files}
    assert not top_level & RUNNERLY_PACKAGES, sorted(top_level & RUNNERLY_PACKAGES)
