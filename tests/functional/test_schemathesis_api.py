"""schemathesis against the /api/ OpenAPI document, in-process over WSGI, as an admin.

Settings from tests/schemathesis-api.toml, which the CLI reads too (docs/api.md): every
check on, positive and negative cases, derandomized so a run is repeatable, bounded so the
whole file takes under three minutes. One test per operation runs the examples, coverage
(the boundaries of each limit) and fuzzing phases; test_api_workflows the stateful one.

The schema is built from `api_document()` (pure: no app, no I/O at import) so that each
operation is its own test item; test_api_openapi proves /api/openapi.json serves exactly
that document. (schemathesis.pytest.from_fixture would load it from the app instead, but
4.32.5's lazy fixture reads `Function._nodeid`, which pytest 9.2 no longer has.)
The CLI equivalent against a running monolith is in docs/api.md.
"""

from pathlib import Path

import pytest
import requests_mock
import schemathesis
from hypothesis import HealthCheck, settings

from monolith.api_openapi import api_document
from support import LOOPBACK, PASSWORD, basic_auth, runnerly_app, serve_strava_dev
from webtest import TestApp

WORKFLOWS = 40  # stateful scenarios, of up to 6 linked calls each
CONFIG = schemathesis.Config.from_path(Path(__file__).parent.parent / "schemathesis-api.toml")


class CurrentApp:
    """The WSGI app schemathesis sends to: whichever monolith the running test built
    (`parametrize` copies the schema, and its `app`, when the module is collected)."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


CURRENT = CurrentApp()
schema = schemathesis.openapi.from_dict(api_document(), config=CONFIG)
schema.app = CURRENT


@schema.auth(refresh_interval=None)
class DemoToken:
    """The running test's bearer token, as schemathesis's own credentials: its auth checks
    then know them valid, and probe the operation without them and with forged ones."""

    token = None

    def get(self, case, context):
        return DemoToken.token

    def set(self, case, token, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@pytest.fixture
def api_token(web, make_user):
    user = make_user("demo@example.com", admin=True, first_name="Demo")
    answer = web.post("/api/tokens", headers=basic_auth(user.email, PASSWORD))
    DemoToken.token = answer.json["token"]
    yield DemoToken.token
    DemoToken.token = None


UNLIMITED = "100000 per minute"


def unthrottled_app(tmp_path):
    """Runnerly with the login throttle out of the way: schemathesis's auth checks send
    hundreds of forged credentials from one address, which the throttle rightly stops with a
    429 (tests/functional/test_login_throttle.py proves that), where the check wants a 401."""
    return runnerly_app(tmp_path, LOGIN_LIMIT_PER_ACCOUNT=UNLIMITED,
                        LOGIN_LIMIT_PER_ADDRESS=UNLIMITED,
                        SIGNUP_TAKEN_LIMIT_PER_ADDRESS=UNLIMITED)


@pytest.fixture
def app(tmp_path):
    app = unthrottled_app(tmp_path)
    with app.app_context():
        yield app


@pytest.fixture
def strava():
    """The Strava development server at the app's STRAVA_URL, as in the demo: linking a
    token asks it (a generated token is refused, 422), and nothing else goes out."""
    with requests_mock.Mocker() as mocker:
        serve_strava_dev(mocker)
        yield mocker


@pytest.fixture
def served(app, strava):
    """This test's app answers the schema's requests over WSGI, as from_wsgi would set it."""
    CURRENT.app = app
    yield app
    CURRENT.app = None


@schema.parametrize()
# One app per operation, kept across its generated cases on purpose: like a real server,
# it accumulates what earlier cases wrote.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_document(case, served, api_token):
    case.call_and_validate()


def test_api_workflows(tmp_path, strava):
    """The stateful phase: chains of calls along the document's links (POST /api/runs, then
    GET, PUT, PATCH or DELETE that very run), which random ids alone almost never reach.

    Each scenario starts on a fresh monolith with its own database and admin: a scenario
    then depends on nothing an earlier one wrote, so hypothesis can replay and shrink a
    failing one (on one shared database, a replay met other rows and hypothesis reported
    its data generation as flaky instead of the failure)."""
    scenarios = iter(range(1_000_000))

    class Workflow(schema.as_state_machine()):
        def setup(self):
            CURRENT.app, DemoToken.token = fresh_monolith(tmp_path / f"s{next(scenarios)}")

    try:
        Workflow.run(settings=settings(max_examples=WORKFLOWS, stateful_step_count=6,
                                       derandomize=True, deadline=None, database=None,
                                       suppress_health_check=list(HealthCheck)))
    finally:
        CURRENT.app, DemoToken.token = None, None


def fresh_monolith(directory):
    """A new monolith on its own database, and a bearer token of an admin of it."""
    from contracts.accounts import Profile, SignUp
    from monolith.wiring import features

    directory.mkdir()
    app = unthrottled_app(directory)
    with app.app_context():
        admin = features().accounts.sign_up(SignUp(email="demo@example.com", password=PASSWORD,
                                                   profile=Profile(first_name="Demo")),
                                            is_admin=True)
    answer = TestApp(app, extra_environ=LOOPBACK).post(
        "/api/tokens", headers=basic_auth(admin.email, PASSWORD))
    return app, answer.json["token"]
