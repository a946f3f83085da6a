"""The pytest plugin, run as a team runs it: on *its own* small suite, in a subprocess.

The suite below is what a team already has: an app factory, a fixture, one test through
the Flask test client. Nothing in it knows about modes; the plugin's options alone route
the feature, serve its remote side in-process, and fail the test on a shadow mismatch.
"""

from __future__ import annotations

import textwrap

import pytest

APP = '''
from dataclasses import dataclass
from typing import Protocol

from flask import Flask, current_app

from shims.contract import describe, read, write
from shims.defaults import kit_settings
from shims.extension import Turnout, routed
from shims.registry import Binding, Feature, Registry
from shims.remote import RemoteClient
from shims.service_app import service_app


@dataclass(frozen=True)
class Greeting:
    text: str


class Greetings(Protocol):
    @read
    def greet(self, name: str) -> Greeting: ...

    @write
    def wave(self, name: str) -> Greeting: ...


GREETINGS = describe(Greetings, "greetings")


class LocalGreetings:
    def greet(self, name):
        # Ordinary Flask code: needs the app context, in the shadow greenlet too.
        return Greeting(current_app.config["WORDING"].format(name=name))

    def wave(self, name):
        return Greeting("*waves at " + name + "*")


class RemoteGreetings(RemoteClient):
    spec = GREETINGS


REGISTRY = Registry([Feature("greetings", service="greeter", url="http://127.0.0.1:9",
                             bindings=[Binding(GREETINGS, local=lambda r: LocalGreetings(),
                                               remote=RemoteGreetings)])])


def create_app(run_dir, wording="hello {name}"):
    app = Flask("legacy")
    app.config["WORDING"] = wording
    settings = kit_settings(REGISTRY, {"RUN_DIR": run_dir, "SERVICE_TOKENS": False},
                            environ={})
    Turnout(app, REGISTRY, settings=settings)

    @app.get("/greet/<name>")
    def greet(name):
        return {"text": routed().greetings.greet(name).text}

    return app


def service(config):
    """The extracted service, on the monolith's own settings (first extraction step)."""
    app = service_app("greeter", {"REQUEST_DEADLINE": 5.0}, [(GREETINGS, LocalGreetings())],
                      title="greeter", description="", guard=lambda method: None)
    app.config["WORDING"] = config.get("SERVICE_WORDING", config["WORDING"])
    return app


def rude_service(config):
    return service({"WORDING": "go away {name}"})


def served():
    """The service as its own process serves it (gunicorn "greet_app:served()")."""
    return service({"WORDING": "hello {name}"})
'''

CONFTEST = '''
from gevent import monkey

monkey.patch_all()

import pytest  # noqa: E402

from greet_app import create_app  # noqa: E402


@pytest.fixture
def client(tmp_path):
    return create_app(str(tmp_path)).test_client()
'''

TESTS = '''
import pytest


def test_greets_by_name(client):
    assert client.get("/greet/ann").get_json() == {"text": "hello ann"}


def test_greets_twice(client):
    client.get("/greet/bo")
    assert client.get("/greet/cy").get_json()["text"] == "hello cy"


@pytest.mark.turnout(greetings="local")
def test_pinned_local(client):
    response = client.get("/greet/di")
    assert response.headers["X-Turnout-Route"] == "greetings.greet=local"
'''


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(greet_app=textwrap.dedent(APP), conftest=textwrap.dedent(CONFTEST),
                        test_greet=textwrap.dedent(TESTS))
    return pytester


def run(suite, *options: str):
    # requests-mock's plugin would import ssl before the suite's conftest patches gevent.
    return suite.runpytest_subprocess("-p", "shims.pytest_plugin", "-p", "no:cacheprovider",
                                      "-p", "no:requests_mock", *options)


def test_without_options_the_suite_runs_as_it_always_did(suite):
    result = run(suite)
    result.assert_outcomes(passed=3)
    assert "turnout:" not in result.stdout.str()


def test_shadow_mode_compares_every_read_and_says_how_many(suite):
    result = run(suite, "--turnout-mode", "greetings=shadow",
                 "--turnout-service", "greetings=greet_app:service")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*turnout: modes greetings=shadow; shadow outcomes: 3 match*"])


def test_a_shadow_mismatch_fails_the_test_naming_the_difference(suite):
    result = run(suite, "--turnout-mode", "greetings=shadow",
                 "--turnout-service", "greetings=greet_app:rude_service")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*turnout: 1 shadow problem(s):*",
                                 "*greetings greetings.greet: mismatch at $.result.text",
                                 "*local (primary): {'result': {'text': 'hello ann'}}",
                                 "*other side (shadow): {'result': {'text': 'go away ann'}}"])


def test_allow_mismatch_only_counts(suite):
    result = run(suite, "--turnout-mode", "greetings=shadow", "--turnout-allow-mismatch",
                 "--turnout-service", "greetings=greet_app:rude_service")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*shadow outcomes: 3 mismatch*"])


@pytest.mark.parametrize("mode", ["remote", "canary:50", "live", "dualwrite"])
def test_every_mode_keeps_the_suite_green(suite, mode):
    result = run(suite, "--turnout-mode", f"greetings={mode}",
                 "--turnout-service", "greetings=greet_app:service")
    result.assert_outcomes(passed=3)


def test_remote_mode_really_calls_the_service(suite):
    result = run(suite, "--turnout-mode", "greetings=remote",
                 "--turnout-service", "greetings=greet_app:rude_service")
    result.assert_outcomes(passed=1, failed=2)  # the rude service answered, not local code
    result.stdout.fnmatch_lines(["*go away*"])


@pytest.mark.parametrize(("options", "message"), [
    (["--turnout-mode", "greetings"], "*expected FEATURE=VALUE*"),
    (["--turnout-mode", "greetings=canary:lots"], "*percentage after ':' must be a number*"),
    (["--turnout-mode", "nothing=remote"], "*nothing: no such feature; the registry has "
                                           "greetings*"),
    (["--turnout-service", "greetings=no_such_module:app", "--turnout-mode",
      "greetings=remote"], "*cannot load it*"),
])
def test_bad_options_are_refused_naming_them(suite, options, message):
    result = run(suite, *options)
    assert result.ret != 0
    result.stdout.fnmatch_lines([message]) if "registry" in message or "load" in message \
        else result.stderr.fnmatch_lines([message])


def test_the_remote_side_can_be_a_real_process(suite):
    """--turnout-service FEATURE=URL: the suite calls a service running on its own."""
    import subprocess  # nosec B404
    import sys
    import time

    import requests
    from support import free_port

    port = free_port()
    server = subprocess.Popen(  # nosec B603
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--no-control-socket",
         "-b", f"127.0.0.1:{port}", "greet_app:served()"], cwd=suite.path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.RequestException:  # still booting
                assert time.monotonic() < deadline and server.poll() is None, "no service"
                time.sleep(0.2)
        result = run(suite, "--turnout-mode", "greetings=shadow",
                     "--turnout-service", f"greetings=http://127.0.0.1:{port}")
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(["*shadow outcomes: 3 match*"])
    finally:
        server.terminate()
        server.wait(timeout=30)
