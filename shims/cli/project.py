"""The team's project file, `turnout.toml`: where the `turnout` command learns about an app.

    registry = "myapp.turnout:REGISTRY"   # required: the app's feature registry
    settings = "myapp.config:load_config" # optional: a callable returning the app's settings
    circus = "circus.ini"                 # optional (default circus.ini): the processes
    database = "DATABASE_URL"             # the setting naming the monolith's database
    [env]                                 # defaults for circus.ini's $(circus.env.X)
    MYAPP_PORT = 5000                     # a number: must stay a whole number >= 1
    MYAPP_URL = "http://127.0.0.1:${MYAPP_PORT}"
    [hooks]
    before_up = "myapp.ops:write_secrets" # called with the run directory before circusd
    [gates]                               # what `turnout flags advance` must see first
    [guard]                               # when the rollback guard moves a feature back

It is found in the current directory, or given by `--project FILE` or `TURNOUT_PROJECT`.
Every path in it is relative to its directory, the project's root: the command runs there
(as circus's watchers do, from their `working_dir`) with the root first on `sys.path`
(as `flask` does), so the app's modules import from the checkout. Every mistake in it is
one line naming the key and what is expected.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from shims.gates.config import Policy, parse_policy
from shims.settings import ConfigError

FILE_NAME = "turnout.toml"
PROJECT_VARIABLE = "TURNOUT_PROJECT"
KEYS = ("registry", "settings", "circus", "database", "env", "hooks", "gates", "guard")
HOOKS = ("before_up",)
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
VARIABLE = re.compile(r"^[A-Za-z_]\w*$")
REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*)\}")
LIKE_IMPORT = "a string like 'package.module:attribute'"


def find(given: str | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """The project file: `--project`, else `TURNOUT_PROJECT`, else ./turnout.toml."""
    named = given or environ.get(PROJECT_VARIABLE) or None
    path = (cwd / named) if named else cwd / FILE_NAME
    if not path.is_file():
        where = f"{path} does not exist" if named else f"no {FILE_NAME} in {cwd}"
        raise ConfigError(f"{where}: run turnout from the project's directory, or pass "
                          f"--project FILE or set {PROJECT_VARIABLE}")
    return path.resolve()


@dataclass(frozen=True)
class ProjectFile:
    """What the file says, checked."""

    path: Path
    registry: str
    settings: str | None
    circus: str
    database: str | None
    env: dict[str, str]
    numeric: frozenset[str]  # [env] variables whose default is a number
    hooks: dict[str, str]
    policy: Policy = field(default_factory=Policy)  # [gates], [guard]: shims/gates/config.py

    @property
    def root(self) -> Path:
        return self.path.parent


def read(path: Path) -> ProjectFile:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return _checked(path, data)


def _checked(path: Path, data: dict[str, Any]) -> ProjectFile:
    def bad(key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{path}: `{key}` must be {expected}, got {value!r}")

    unknown = [key for key in data if key not in KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key `{unknown[0]}`; known keys: {', '.join(KEYS)}")
    if "registry" not in data:
        raise ConfigError(f"{path}: `registry` is missing: the app's feature registry, "
                          f"{LIKE_IMPORT}")

    def import_path(key: str, value: Any) -> str:
        if not isinstance(value, str) or not IMPORT_PATH.match(value):
            raise bad(key, LIKE_IMPORT, value)
        return value

    registry = import_path("registry", data["registry"])
    settings = import_path("settings", data["settings"]) if "settings" in data else None
    circus = data.get("circus", "circus.ini")
    if not isinstance(circus, str) or not circus:
        raise bad("circus", "the path of the circus configuration, e.g. 'circus.ini'", circus)
    database = data.get("database")
    if database is not None and not (isinstance(database, str) and VARIABLE.match(database)):
        raise bad("database", "the name of the setting that holds the monolith's database "
                              "URL, e.g. 'DATABASE_URL'", database)
    env, numeric = _env(data.get("env", {}), bad)
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise bad("hooks", f"a table of hooks ({', '.join(HOOKS)})", hooks)
    for name, value in hooks.items():
        if name not in HOOKS:
            raise ConfigError(f"{path}: unknown hook `hooks.{name}`; known hooks: "
                              f"{', '.join(HOOKS)}")
        import_path(f"hooks.{name}", value)
    return ProjectFile(path=path, registry=registry, settings=settings, circus=circus,
                       database=database, env=env, numeric=numeric, hooks=dict(hooks),
                       policy=parse_policy(data, str(path)))


def _env(table: Any, bad: Callable[[str, str, Any], ConfigError]
         ) -> tuple[dict[str, str], frozenset[str]]:
    if not isinstance(table, dict):
        raise bad("env", "a table of environment variables", table)
    env, numeric = {}, set()
    for name, value in table.items():
        if not VARIABLE.match(name):
            raise bad(f"env.{name}", "named like an environment variable", name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise bad(f"env.{name}", "a string or a whole number", value)
        if isinstance(value, int):
            numeric.add(name)
        env[name] = str(value)
    return env, frozenset(numeric)


# --- the project, in use ------------------------------------------------------------------

class Project:
    """A project file and what its keys lead to, each loaded once, when first needed (so
    `turnout down` works when the app does not even import)."""

    def __init__(self, file: ProjectFile):
        self.file = file

    @property
    def root(self) -> Path:
        return self.file.root

    def enter(self) -> None:
        """Run where the processes run, with the app's modules importable."""
        root = str(self.root)
        if root not in (str(Path(p).resolve()) for p in sys.path if p):
            sys.path.insert(0, root)
        os.chdir(root)

    def circus_path(self, override: Path | None = None) -> Path:
        path = override or self.root / self.file.circus
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (`circus` in {self.file.path}, or "
                              "--config FILE)")
        return path.resolve()

    @cached_property
    def registry(self):
        from shims.registry import load_registry

        return _calling_app_code("registry", self.file.registry,
                                 lambda: load_registry(self.file.registry))

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The app's settings as its processes would load them here; the flag store's URL
        must be among them."""
        if self.file.settings is None:
            from shims.defaults import kit_settings

            settings: Any = kit_settings(self.registry)
        else:
            found = load_object("settings", self.file.settings)
            settings = _calling_app_code("settings", self.file.settings,
                                         found if callable(found) else lambda: found)
        if not isinstance(settings, Mapping):
            raise ConfigError(f"settings {self.file.settings!r} gave a "
                              f"{type(settings).__name__}, not a mapping of settings")
        if not settings.get("FLAGS_URL"):
            raise ConfigError(f"settings {self.file.settings!r} have no FLAGS_URL: build them "
                              "with shims.defaults.kit_settings(registry, ...)")
        return dict(settings)

    def database_url(self, feature: str) -> str:
        """The monolith's database, for a feature that owns data."""
        name = self.file.database
        if name is None:
            raise ConfigError(f"feature {feature!r} owns data: set `database` in "
                              f"{self.file.path} to the setting that holds the monolith's "
                              "database URL (e.g. database = \"DATABASE_URL\")")
        url = self.settings.get(name)
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{self.file.path}: database = {name!r}, but the app's settings "
                              f"have no {name} (got {url!r})")
        return url

    def hook(self, name: str) -> Callable[..., Any] | None:
        path = self.file.hooks.get(name)
        if path is None:
            return None
        found = load_object(f"hooks.{name}", path)
        if not callable(found):
            raise ConfigError(f"hooks.{name} {path!r} is a {type(found).__name__}, not a "
                              "function")
        return lambda *args: _calling_app_code(f"hooks.{name}", path, lambda: found(*args))


def load(given: str | None, environ: Mapping[str, str], cwd: Path) -> Project:
    return Project(read(find(given, environ, cwd)))


def load_object(key: str, path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    module = _calling_app_code(key, path, lambda: importlib.import_module(module_name))
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{key} {path!r}: {module_name} has no {attribute!r}") from None


def _calling_app_code(key: str, path: str, call: Callable[[], Any]) -> Any:
    """The app's own code, run for the command: whatever it raises becomes one line that
    names the key of turnout.toml that led there."""
    try:
        return call()
    except ConfigError:
        raise  # already names what is wrong (a setting, a registry path)
    except ImportError as exc:
        raise ConfigError(f"{key} {path!r}: cannot import it ({exc})") from exc
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"{key} {path!r} failed: {type(exc).__name__}: {detail}") from exc


# --- the environment -----------------------------------------------------------------------

def with_defaults(environ: Mapping[str, str], defaults: Mapping[str, str],
                  where: str = FILE_NAME) -> dict[str, str]:
    """`environ` plus each default it does not set; a default may use `${NAME}` for
    another variable (set, or itself defaulted here)."""
    env = dict(environ)
    resolving: list[str] = []

    def value(name: str, needed_by: str) -> str:
        if name in env:
            return env[name]
        if name not in defaults:
            raise ConfigError(f"{where} [env] {needed_by} uses ${{{name}}}, which is neither "
                              "set nor given a default there")
        if name in resolving:
            raise ConfigError(f"{where} [env] {name} refers to itself through "
                              f"{' -> '.join([*resolving, name])}")
        resolving.append(name)
        env[name] = REFERENCE.sub(lambda m: value(m.group(1), name), defaults[name])
        resolving.pop()
        return env[name]

    for name in defaults:
        value(name, name)
    return env


def check_numbers(env: Mapping[str, str], names: frozenset[str], where: str = FILE_NAME) -> None:
    """A variable whose default is a number must stay one (a count of workers, a port)."""
    for name in sorted(names):
        raw = env.get(name, "")
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, got {raw!r} "
                              f"({where} [env] gives it as a number)")


@contextmanager
def applied(env: Mapping[str, str]) -> Iterator[None]:
    """The command's own process sees the variables it would give its processes, for as long
    as it runs (the app's settings read them); put back as they were afterwards."""
    added = {name: value for name, value in env.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
