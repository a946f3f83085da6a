"""`turnout new-service`'s writer, on a project that is not Runnerly: what it writes runs.

The generated contract test is run in a subprocess in the project, as the team would run
it; the generated circus sections are read back by circus's own parser.
"""

from __future__ import annotations

import configparser
import textwrap

import pytest

from shims.registry import Binding, Feature, load_registry
from shims.scaffold import plan_service, write_service
from shims.settings import ConfigError
from test_pytest_plugin import APP

CIRCUS = """[circus]
endpoint = tcp://127.0.0.1:5555

[socket:web]
host = 127.0.0.1
port = 5000
"""


@pytest.fixture
def project(pytester):
    pytester.makepyfile(greet_app=textwrap.dedent(APP))
    pytester.makeconftest("from gevent import monkey\n\nmonkey.patch_all()\n")
    (pytester.path / "circus.ini").write_text(CIRCUS)
    pytester.syspathinsert()
    return pytester


def plan(project, **options):
    registry = load_registry("greet_app:REGISTRY")
    return plan_service(registry.feature("greetings"), "greet_app:REGISTRY",
                        project=project.path, circus_ini=project.path / "circus.ini",
                        port=options.pop("port", 5010), **options)


def test_it_writes_a_service_its_wsgi_module_its_watcher_and_a_contract_test(project):
    written = write_service(plan(project))
    names = sorted(str(path.relative_to(project.path)) for path in written)
    assert names == ["circus.ini", "greeter_service/__init__.py", "greeter_service/app.py",
                     "greeter_service/wsgi.py", "tests/test_greetings_contract.py"]
    circus = configparser.ConfigParser(interpolation=None)
    circus.read(project.path / "circus.ini")
    assert circus["socket:greeter"]["port"] == "5010"
    assert "greeter_service.wsgi:app" in circus["watcher:greeter"]["args"]
    assert circus.has_section("socket:web")  # what was there stays


def test_the_generated_contract_test_passes_on_both_sides(project):
    write_service(plan(project))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:requests_mock",
                                          "tests/test_greetings_contract.py")
    result.assert_outcomes(passed=2)


def test_the_generated_service_answers_the_contract(project):
    write_service(plan(project))
    from greeter_service.app import create_app

    client = create_app({"SERVICE_TOKENS": False}).test_client()
    body = client.post("/rpc/greetings/wave", json={"args": {"name": "al"}}).get_json()
    assert body == {"result": {"text": "*waves at al*"}}


def test_tokens_are_asked_for_unless_turned_off(project):
    write_service(plan(project))
    from greeter_service.app import create_app

    client = create_app({"TOKEN_JWKS_URL": "http://127.0.0.1:9/jwks"}).test_client()
    assert client.post("/rpc/greetings/wave", json={"args": {"name": "al"}}).status_code == 401


def test_it_never_overwrites_and_says_what_is_in_the_way(project):
    write_service(plan(project))
    with pytest.raises(ConfigError, match=r"not overwriting .*greeter_service/__init__\.py"):
        plan(project)
    (project.path / "tests" / "test_greetings_contract.py").unlink()
    with pytest.raises(ConfigError, match=r"already has \[socket:greeter\], \[watcher:greeter\]"):
        plan(project, package="other_service")


@pytest.mark.parametrize(("options", "message"), [
    ({"package": "Not-A-Package"}, "must be a Python package name"),
    ({"port": 70000}, "must be from 1 to 65535"),
])
def test_bad_options_are_refused_naming_them(project, options, message):
    with pytest.raises(ConfigError, match=message):
        plan(project, **options)


def test_a_feature_without_a_service_is_refused_with_what_to_do(project):
    from greet_app import GREETINGS, LocalGreetings

    local_only = Feature("greetings", bindings=[Binding(GREETINGS, local=LocalGreetings)])
    with pytest.raises(ConfigError, match="has no service yet"):
        plan_service(local_only, "greet_app:REGISTRY", project=project.path,
                     circus_ini=project.path / "circus.ini", port=5010)
