"""`turnout new-service FEATURE`: the files a team's first extraction needs, written for it.

For a feature whose contract, local implementation and remote client the team already
wrote and registered (shims/registry.py), it writes:

- `<package>/app.py`: the service app (`shims.feature_service`), on the feature's own
  local code; `<package>/wsgi.py`: gunicorn's entry point, gevent patched first;
- a `[socket:...]`, `[watcher:...]` and `[env:...]` section appended to circus.ini, in
  the shape of the monolith's (gunicorn gevent workers on a circus-owned socket);
- `tests/test_<feature>_contract.py`: the contract against both sides, local and remote
  over in-process WSGI, to grow with the team's own cases.

It never overwrites: an existing file or circus section stops it before anything is
written, naming what is in the way.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from shims.registry import Feature
from shims.settings import ConfigError

PACKAGE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class ServicePlan:
    feature: Feature
    registry_path: str  # "module:attribute" of the team's registry
    package: str  # the new service's Python package
    port: int
    project: Path
    circus_ini: Path
    tests_dir: Path

    @property
    def files(self) -> dict[Path, str]:
        base = self.project / self.package
        return {base / "__init__.py": "",
                base / "app.py": _APP.format(**self._names()),
                base / "wsgi.py": _WSGI.format(**self._names()),
                self.tests_dir / f"test_{self.feature.name}_contract.py":
                    _CONTRACT_TEST.format(**self._names())}

    def circus_sections(self) -> str:
        return _CIRCUS.format(**self._names())

    def _names(self) -> dict[str, str]:
        module, _, attribute = self.registry_path.partition(":")
        return {"feature": self.feature.name, "service": self.feature.service or "",
                "package": self.package, "port": str(self.port), "registry_module": module,
                "registry_attribute": attribute, "url_setting": self.feature.url_setting or "",
                "gunicorn_args": " ".join(_gunicorn_args(self.feature.service or "",
                                                         self.package))}


def _gunicorn_args(service: str, package: str) -> list[str]:
    """As the monolith's watcher runs: gevent workers, no control socket (gunicorn shares
    one default path between every master), the socket circus owns."""
    return ["-c python:shims.gunicorn_conf -k gevent -w 2 --no-control-socket",
            "--graceful-timeout 20 --timeout 30",
            f"-b fd://$(circus.sockets.{service}) --access-logfile - --name {service}",
            f"{package}.wsgi:app"]


def plan_service(feature: Feature, registry_path: str, *, project: Path, circus_ini: Path,
                 port: int, package: str | None = None, tests_dir: Path | None = None
                 ) -> ServicePlan:
    """Checks everything before anything is written."""
    if feature.service is None:
        raise ConfigError(f"feature {feature.name!r} has no service yet: give its Feature a "
                          "service name and a remote client for each Binding, then run again")
    package = package or f"{feature.service}_service"
    if not PACKAGE_NAME.match(package):
        raise ConfigError(f"--package {package!r} must be a Python package name")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535, got {port}")
    plan = ServicePlan(feature=feature, registry_path=registry_path, package=package,
                       port=port, project=project, circus_ini=circus_ini,
                       tests_dir=tests_dir or project / "tests")
    in_the_way = [str(path) for path in plan.files if path.exists()]
    if in_the_way:
        raise ConfigError(f"not overwriting {', '.join(in_the_way)}: remove them or choose "
                          "another --package")
    _check_circus(plan)
    return plan


def _check_circus(plan: ServicePlan) -> None:
    if not plan.circus_ini.is_file():
        raise ConfigError(f"{plan.circus_ini} does not exist: the service's watcher goes there")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(plan.circus_ini)
    except configparser.Error as exc:
        raise ConfigError(f"{plan.circus_ini} cannot be read: {exc.message}") from exc
    taken = [name for name in (f"socket:{plan.feature.service}",
                               f"watcher:{plan.feature.service}") if parser.has_section(name)]
    if taken:
        raise ConfigError(f"{plan.circus_ini} already has [{'], ['.join(taken)}]")


def write_service(plan: ServicePlan) -> list[Path]:
    written = []
    for path, text in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x") as handle:  # "x": never overwrite, even if one appeared since
            handle.write(text)
        written.append(path)
    with plan.circus_ini.open("a") as handle:
        handle.write(plan.circus_sections())
    return [*written, plan.circus_ini]


_APP = '''"""The {service} service: the `{feature}` feature, extracted by `turnout new-service`.

It answers the feature's contracts with the feature's own local implementation, so it
starts on the code (and the database) the monolith uses today. Route the feature to it
with `turnout flags set {feature} shadow`, then `canary`, then `remote`.
"""

from shims.feature_service import feature_service

from {registry_module} import {registry_attribute}


def create_app(config=None):
    return feature_service({registry_attribute}, "{feature}", config)
'''

_WSGI = '''"""gunicorn's entry point for the {service} service ([watcher:{service}])."""

from gevent import monkey

monkey.patch_all()  # first: before anything imports socket, ssl or threading

from {package}.app import create_app  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402
from shims.telemetry import configure as configure_tracing  # noqa: E402

configure_logging()  # JSON log lines with trace ids
configure_tracing("{service}")  # spans exported when OTEL_TRACES_EXPORTER says so
app = create_app()
'''

_CIRCUS = '''
# The {service} service, added by `turnout new-service {feature}`. The monolith finds it at
# TURNOUT_{url_setting} (http://127.0.0.1:{port}).
[socket:{service}]
host = 127.0.0.1
port = {port}

[watcher:{service}]
cmd = $(circus.env.TURNOUT_PYTHON) -m gunicorn
args = {gunicorn_args}
working_dir = $(circus.env.TURNOUT_HOME)
use_sockets = True
uid = $(circus.env.TURNOUT_PROCESS_UID)
gid = $(circus.env.TURNOUT_PROCESS_GID)
numprocesses = 1
copy_env = True
graceful_timeout = 25
stdout_stream.class = FileStream
stdout_stream.filename = $(circus.env.TURNOUT_RUN_DIR)/logs/{service}.access.log
stderr_stream.class = FileStream
stderr_stream.filename = $(circus.env.TURNOUT_RUN_DIR)/logs/{service}.log

[env:{service}]
PROMETHEUS_MULTIPROC_DIR = $TURNOUT_RUN_DIR/metrics/{service}
'''

_CONTRACT_TEST = '''"""The `{feature}` contracts against both sides: the local implementation
and the {service} service over in-process WSGI. Written by `turnout new-service {feature}`;
add your own cases with the `side` fixture: each then holds for both, as the contract says."""

import pytest

from shims.registry import Resources
from shims.transport import WsgiTransport
from {package}.app import create_app
from {registry_module} import {registry_attribute}

FEATURE = {registry_attribute}.feature("{feature}")
BINDINGS = {{binding.spec.name: binding for binding in FEATURE.bindings}}


@pytest.fixture
def service():
    app = create_app({{"SERVICE_TOKENS": False}})
    app.config["TESTING"] = True
    return app


@pytest.fixture(params=["local", "remote"])
def side(request, service):
    """side("contract name") -> that contract's implementation on this side."""
    def implementation(contract):
        binding = BINDINGS[contract]
        if request.param == "remote":
            return binding.remote(WsgiTransport(service))
        return binding.local(Resources(settings=service.config, engine=None, routed={{}}))
    with service.app_context():
        yield implementation


@pytest.mark.parametrize("contract", sorted(BINDINGS))
def test_the_service_documents_every_method(service, contract):
    paths = service.test_client().get("/openapi.json").get_json()["paths"]
    for method in BINDINGS[contract].spec.methods:
        assert f"/rpc/{{contract}}/{{method}}" in paths


@pytest.mark.parametrize("contract", sorted(BINDINGS))
def test_the_service_refuses_a_call_missing_its_arguments_naming_one(service, contract):
    client = service.test_client()
    for method in BINDINGS[contract].spec.methods.values():
        required = [param.name for param in method.params if param.required]
        if required:
            response = client.post(f"/rpc/{{contract}}/{{method.name}}", json={{"args": {{}}}})
            assert response.status_code == 400
            assert response.get_json()["field"] in required
'''
