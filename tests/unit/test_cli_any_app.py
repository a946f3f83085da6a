"""The `turnout` command on an app that is not Runnerly: a project directory of its own with a
tiny registry (one feature, no data) and a turnout.toml, run as a team would run it, from
that directory, in a separate process; and every mistake in a project file is one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import ROOT

RUNNERLY = ("monolith", "extracted", "contracts", "scripts", "stravadev")

REGISTRY_MODULE = '''
from typing import Protocol

from shims.contract import describe, read
from shims.registry import Binding, Feature, Registry
from shims.remote import RemoteClient


class Greetings(Protocol):
    @read
    def greet(self, name: str) -> str: ...


GREETINGS = describe(Greetings, "greetings")


class RemoteGreetings(RemoteClient):
    spec = GREETINGS


class LocalGreetings:
    def greet(self, name: str) -> str:
        return f"hello {name}"


REGISTRY = Registry([
    Feature("greetings", service="greeter", url="http://127.0.0.1:9",
            bindings=[Binding(GREETINGS, local=lambda r: LocalGreetings(),
                              remote=RemoteGreetings)]),
])
'''

# Runs the command in-process and then says which Runnerly packages got imported.
DRIVER = f'''
import sys
from shims.cli import main
code = main(sys.argv[1:])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({RUNNERLY!r}))
print("runnerly modules:", loaded, file=sys.stderr)
sys.exit(code)
'''


@pytest.fixture
def kit_path(tmp_path_factory):
    """A directory holding only the kit (`shims`), for PYTHONPATH: the app's process can
    import the kit and its own modules, and nothing of Runnerly from this checkout."""
    path = tmp_path_factory.mktemp("kit")
    (path / "shims").symlink_to(ROOT / "shims", target_is_directory=True)
    return path


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "greeter-app"
    (root / "greeter").mkdir(parents=True)
    (root / "greeter" / "__init__.py").write_text("")
    (root / "greeter" / "turnout_registry.py").write_text(REGISTRY_MODULE)
    (root / "run").mkdir()  # where the kit's default flag store lives (RUN_DIR = run)
    (root / "turnout.toml").write_text('registry = "greeter.turnout_registry:REGISTRY"\n')
    return root


@pytest.fixture
def turnout(project, kit_path):
    """`turnout ARGS...` from the project's directory; (exit code, stdout, stderr)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TURNOUT_")}
    env["PYTHONPATH"] = str(kit_path)

    def run(*args: str, driver: bool = False, cwd: Path | None = None):
        command = ["-c", DRIVER] if driver else ["-m", "shims.cli"]
        done = subprocess.run([sys.executable, *command, *args], cwd=cwd or project, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return done.returncode, done.stdout, done.stderr

    return run


def one_line_refusal(result) -> str:
    code, out, err = result
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("turnout")
    return lines[0]


def test_flags_list_set_and_history_on_the_apps_own_registry(turnout, project):
    code, out, err = turnout("flags", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["feature", "mode", "remote", "side", "data"]
    assert lines[1].split() == ["greetings", "local", "yes", "shared"]
    assert lines[-1].startswith("kill switch: off   version ")
    assert len(lines) == 3  # no feature owns data: no mirror lines
    assert (project / "run" / "flags.db").exists()

    code, out, err = turnout("flags", "set", "greetings", "canary", "--percent", "25",
                             "--actor", "ada@laptop")
    assert (code, err) == (0, "")
    assert out == "greetings -> canary 25% (every worker within a second)\n"
    assert turnout("flags", "list")[1].splitlines()[1].split()[:3] == ["greetings", "canary",
                                                                       "25%"]
    code, out, err = turnout("flags", "history")
    assert (code, err) == (0, "")
    assert out.split()[2:] == ["ada@laptop", "greetings", "local", "->", "canary", "25%"]


def test_bad_input_on_the_apps_registry(turnout):
    line = one_line_refusal(turnout("flags", "set", "runs", "shadow"))
    assert "unknown feature 'runs'" in line and "greetings" in line
    line = one_line_refusal(turnout("data", "verify", "greetings"))
    assert "invalid choice: 'greetings'" in line and "no feature owns data" in line


def test_the_command_imports_nothing_of_runnerly(turnout):
    code, _, err = turnout("flags", "list", driver=True)
    assert code == 0
    assert "runnerly modules: []" in err


def test_the_project_file_is_found_by_option_or_variable(turnout, project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    line = one_line_refusal(turnout("flags", "list", cwd=elsewhere))
    assert f"no turnout.toml in {elsewhere}" in line and "--project" in line
    code, out, _ = turnout("--project", str(project / "turnout.toml"), "flags", "list",
                           cwd=elsewhere)
    assert code == 0 and out.splitlines()[1].startswith("greetings")


def test_settings_that_fail_are_one_line(turnout, project):
    (project / "greeter" / "config.py").write_text(textwrap.dedent('''
        def load_config():
            raise RuntimeError("no config for you")
        NOT_SETTINGS = 42
    '''))
    (project / "turnout.toml").write_text('registry = "greeter.turnout_registry:REGISTRY"\n'
                                          'settings = "greeter.config:load_config"\n')
    line = one_line_refusal(turnout("flags", "list"))
    assert line == ("turnout: settings 'greeter.config:load_config' failed: RuntimeError: "
                    "no config for you")
    (project / "turnout.toml").write_text('registry = "greeter.turnout_registry:REGISTRY"\n'
                                          'settings = "greeter.config:NOT_SETTINGS"\n')
    assert "not a mapping of settings" in one_line_refusal(turnout("flags", "list"))


# --- bad project files, in-process: one line each, exit code 2 -----------------------------

@pytest.mark.parametrize("text, says", [
    ("registry = ", "is not valid TOML"),
    ('registy = "a.b:C"', "unknown key `registy`; known keys: registry, settings"),
    ('circus = "circus.ini"', "`registry` is missing"),
    ("registry = 5", "`registry` must be a string like 'package.module:attribute', got 5"),
    ('registry = "just_a_module"', "`registry` must be a string like"),
    ('registry = "no_such_module_here:REGISTRY"', "cannot import no_such_module_here"),
    ('registry = "os:NO_REGISTRY"', "os has no 'NO_REGISTRY'"),
    ('registry = "os:sep"', "is a str, not a shims.registry.Registry"),
    ('registry = "os:sep"\nsettings = 3', "`settings` must be a string like"),
    ('registry = "os:sep"\ncircus = ""', "`circus` must be the path of the circus"),
    ('registry = "os:sep"\ndatabase = "a url"', "`database` must be the name of the setting"),
    ('registry = "os:sep"\n[env]\nPORT = true', "`env.PORT` must be a string or a whole number"),
    ('registry = "os:sep"\n[env]\nT_URL = "http://${T_NOWHERE}"', "URL uses ${T_NOWHERE}, which"),
    ('registry = "os:sep"\n[env]\nT_A = "${T_B}"\nT_B = "${T_A}"', "through T_A -> T_B -> T_A"),
    ('registry = "os:sep"\n[env]\nWORKERS = 2', None),  # fine: the registry is what fails
    ('registry = "os:sep"\nenv = 3', "`env` must be a table of environment variables"),
    ('registry = "os:sep"\n[hooks]\nafter_up = "a:b"', "unknown hook `hooks.after_up`"),
    ('registry = "os:sep"\n[hooks]\nbefore_up = "a"', "`hooks.before_up` must be a string"),
])
def test_a_bad_project_file_is_one_line_naming_the_key(tmp_path, monkeypatch, capsys, text,
                                                         says):
    from shims.cli import main

    (tmp_path / "turnout.toml").write_text(text + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the project first
    monkeypatch.delenv("TURNOUT_PROJECT", raising=False)
    code = main(["flags", "list"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert says is None or says in err, err
    if says is None:
        assert "not a shims.registry.Registry" in err


def test_a_variable_given_as_a_number_must_stay_one(tmp_path, monkeypatch, capsys):
    from shims.cli import main

    (tmp_path / "turnout.toml").write_text('registry = "os:sep"\n[env]\nAPP_WORKERS = 2\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("APP_WORKERS", "two")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err == ("turnout: APP_WORKERS must be a whole number of at least 1, got 'two' "
                   "(turnout.toml [env] gives it as a number)\n")
