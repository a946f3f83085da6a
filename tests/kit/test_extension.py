"""The public API: a registry and `Turnout().init_app` on an app that is not Runnerly.

A tiny Greetings contract, a local side that needs the app context, and its service
answered in this process over WSGI: what a team's first feature looks like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pytest
from flask import Flask, current_app
from webtest import TestApp

from shims.contract import describe, read, write
from shims.defaults import kit_settings
from shims.errors import NotFound
from shims.extension import Turnout, routed, state
from shims.registry import Binding, Feature, Registry, load_registry
from shims.remote import RemoteClient
from shims.service_app import service_app
from shims.settings import ConfigError
from shims.transport import WsgiTransport
from support import LOOPBACK


@dataclass(frozen=True)
class Greeting:
    name: str
    text: str


class Greetings(Protocol):
    @read
    def greet(self, name: str) -> Greeting: ...

    @write
    def rename(self, old: str, new: str) -> Greeting: ...


GREETINGS = describe(Greetings, "greetings")


class LocalGreetings:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def greet(self, name: str) -> Greeting:
        if name == "nobody":
            raise NotFound("no such person")
        # Ordinary Flask code: it needs the app context, as Flask-SQLAlchemy does.
        return Greeting(name, f"{self.prefix} {name}{current_app.config['PUNCTUATION']}")

    def rename(self, old: str, new: str) -> Greeting:
        return self.greet(new)


class RemoteGreetings(RemoteClient):
    spec = GREETINGS


def registry(service: str | None = "greeter") -> Registry:
    return Registry([Feature("greetings", service=service,
                             url="http://127.0.0.1:9" if service else None,
                             bindings=[Binding(GREETINGS, local=lambda r: LocalGreetings(
                                 r.settings["GREETING"]),
                                 remote=RemoteGreetings if service else None)])])


def service(prefix: str) -> Flask:
    app = service_app("greeter", {"REQUEST_DEADLINE": 5.0},
                      [(GREETINGS, LocalGreetings(prefix))], title="greeter",
                      description="test", guard=lambda method: None)
    app.config["PUNCTUATION"] = "?"
    return app


def monolith(tmp_path, **options) -> tuple[Flask, Turnout]:
    app = Flask("legacy")
    app.config["PUNCTUATION"] = "!"
    reg = options.pop("reg", None) or registry()
    settings = kit_settings(reg, {"RUN_DIR": str(tmp_path), "FLAGS_REFRESH": 0.0,
                                  "SERVICE_TOKENS": False}, environ={},
                            app_defaults={"GREETING": "hello"})
    extension = Turnout()
    extension.init_app(app, reg, settings=settings,
                       transports={"greetings": WsgiTransport(service("hi"))}, **options)

    @app.get("/greet/<name>")
    def greet(name: str):
        return {"text": routed().greetings.greet(name).text}

    return app, extension


def set_mode(app: Flask, mode: str, percent=None) -> None:
    state_ = app.extensions["turnout"]
    state_.control.store.set("greetings", mode, percent, actor="test")


def test_each_mode_answers_from_the_side_the_flag_names(tmp_path):
    app, _ = monolith(tmp_path)
    web = TestApp(app, extra_environ=LOOPBACK)
    assert web.get("/greet/ann").json == {"text": "hello ann!"}
    set_mode(app, "remote")
    response = web.get("/greet/ann")
    assert response.json == {"text": "hi ann?"}
    assert response.headers["X-Turnout-Route"] == "greetings.greet=remote"


def test_the_kit_mounts_health_and_metrics_and_no_admin_api_without_an_authorizer(tmp_path):
    app, _ = monolith(tmp_path)
    web = TestApp(app, extra_environ=LOOPBACK)
    health = web.get("/healthz").json
    assert health["status"] == "ok" and health["flags"]["modes"] == {"greetings": "local"}
    assert "turnout_flag_version" in web.get("/metrics").text
    assert web.get("/_turnout/flags", status=404)


def test_the_admin_api_asks_the_apps_authorizer(tmp_path):
    calls = []

    def authorize() -> str:
        calls.append(1)
        return "ops"

    app, _ = monolith(tmp_path, authorize_admin=authorize)
    web = TestApp(app, extra_environ=LOOPBACK)
    web.put_json("/_turnout/flags/greetings", {"mode": "remote"})
    assert calls and web.get("/greet/bo").json == {"text": "hi bo?"}


def test_served_contracts_answer_on_rpc_as_routed(tmp_path):
    app, _ = monolith(tmp_path, serve=["greetings"])
    web = TestApp(app, extra_environ=LOOPBACK)
    body = web.post_json("/rpc/greetings/greet", {"args": {"name": "cy"}}).json
    assert body == {"result": {"name": "cy", "text": "hello cy!"}}
    assert web.post_json("/rpc/greetings/greet", {"args": {"name": "nobody"}},
                         status=404).json["error"] == "not_found"


def test_state_and_routed_are_reached_through_the_current_app(tmp_path):
    app, _ = monolith(tmp_path)
    with app.app_context():
        assert state().registry.infos()["greetings"].has_remote
        assert set(routed()) == {"greetings"}
        with pytest.raises(AttributeError, match="routed: greetings"):
            routed().nothing  # noqa: B018


def test_a_feature_without_a_service_is_its_local_side(tmp_path):
    app, _ = monolith(tmp_path, reg=registry(service=None))
    with app.test_request_context():
        assert isinstance(routed().greetings, LocalGreetings)


def test_serving_an_unknown_contract_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="serve: no contract named nothing"):
        monolith(tmp_path, serve=["nothing"])


def test_a_service_without_its_url_is_refused_naming_the_variable(tmp_path):
    reg = registry()
    settings = kit_settings(reg, {"RUN_DIR": str(tmp_path), "GREETER_URL": ""}, environ={},
                            app_defaults={"GREETING": "hello"})
    with pytest.raises(ConfigError, match="TURNOUT_GREETER_URL"):
        Turnout(Flask("legacy"), reg, settings=settings)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Feature("Bad Name", bindings=[Binding(GREETINGS, local=LocalGreetings)]),
     "must be a lowercase word"),
    (lambda: Feature("greetings", bindings=[]), "at least one Binding"),
    (lambda: Feature("greetings", service="greeter",
                     bindings=[Binding(GREETINGS, local=LocalGreetings)]),
     "no remote client for greetings"),
    (lambda: Registry([registry().features[0], registry().features[0]]),
     "repeated: greetings"),
])
def test_a_malformed_registry_is_refused_naming_what_is_wrong(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_load_registry_finds_an_apps_registry_by_import_path():
    loaded = load_registry("tests.kit.test_extension:registry")
    assert [f.name for f in loaded] == ["greetings"]
    for path, message in (("nocolon", "must look like"), ("no.such.module:x", "cannot import"),
                          ("tests.kit.test_extension:nothing", "has no 'nothing'"),
                          ("tests.kit.test_extension:GREETINGS", "not a shims.registry")):
        with pytest.raises(ConfigError, match=message):
            load_registry(path)
