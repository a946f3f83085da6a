"""Shared fixtures. gevent patches first, exactly as the production workers do.

The kit's own tests (tests/kit) run without the reference app, on the lowest versions the
kit supports (tox -e lowest), where Runnerly's packages and dependencies are not installed:
so this file imports Runnerly (monolith, contracts) only inside the fixtures that build it.
"""

from gevent import monkey

monkey.patch_all()

import importlib.util  # noqa: E402
import os  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402
from webtest import TestApp  # noqa: E402

# pytester: the kit's pytest plugin is tested on a small suite of its own (test_pytest_plugin).
pytest_plugins = ["pytester"]
# schemathesis's plugin, only now that gevent has patched ssl (pytest.ini keeps pytest from
# loading it earlier); absent where schemathesis is not installed (tox -e lowest).
if importlib.util.find_spec("schemathesis"):
    pytest_plugins.append("schemathesis.pytest.plugin")

import span_recorder  # noqa: E402
from support import (LOOPBACK, PASSWORD, SessionTokens, basic_auth, runnerly_app,  # noqa: E402
                     service_or_skip, write_session_jwks)

span_recorder.install()  # before any test can import a wsgi module (span_recorder.py says why)


@pytest.fixture
def spans():
    """The spans that end during the test (tests/span_recorder.py)."""
    recorder = span_recorder.RECORDER
    recorder.spans, recorder.listening = [], True
    yield recorder
    recorder.listening = False


@pytest.fixture(scope="session", autouse=True)
def session_jwks(tmp_path_factory):
    """Every service started by the tests (in this process or as a subprocess, which
    inherits the environment) verifies tokens against this session's key."""
    path = write_session_jwks(tmp_path_factory.mktemp("jwks"))
    previous = os.environ.get("TURNOUT_TOKEN_JWKS_URL")
    os.environ["TURNOUT_TOKEN_JWKS_URL"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("TURNOUT_TOKEN_JWKS_URL", None)
    else:
        os.environ["TURNOUT_TOKEN_JWKS_URL"] = previous


@pytest.fixture(scope="session")
def service_tokens():
    """Tokens for test clients of guarded services."""
    return SessionTokens()


@pytest.fixture
def app(tmp_path):
    """The reference monolith, Runnerly, on a SQLite file of its own."""
    with runnerly_app(tmp_path).app_context() as context:
        yield context.app


@pytest.fixture
def web(app):
    """WebTest against the monolith, CSRF on, exactly as browsers see it."""
    return TestApp(app, extra_environ=LOOPBACK)


@pytest.fixture
def make_user(app):
    """Create a runner (or an admin) through the Accounts contract; returns its UserRecord."""
    from contracts.accounts import Profile, SignUp
    from monolith.wiring import features

    counter = iter(range(1, 10_000))

    def make(email=None, *, admin=False, password=PASSWORD, **profile):
        email = email or f"runner{next(counter)}@example.com"
        with app.app_context():
            return features().accounts.sign_up(
                SignUp(email=email, password=password, profile=Profile(**profile)),
                is_admin=admin)
    return make


@pytest.fixture
def api_headers(web):
    """Bearer-token headers for a user, obtained through POST /api/tokens."""
    def headers_for(user, password=PASSWORD):
        token = web.post("/api/tokens", headers=basic_auth(user.email, password)).json["token"]
        return {"Authorization": f"Bearer {token}"}
    return headers_for


@pytest.fixture
def requests_mock():
    import requests_mock as rm

    with rm.Mocker() as mocker:
        yield mocker


@pytest.fixture
def postgres_url():
    """A SQLAlchemy URL on the local PostgreSQL, in a schema of its own that is dropped after."""
    from shims.compat import SQLALCHEMY_2

    if not SQLALCHEMY_2:  # not a missing service: the kit's PostgreSQL backends need 2.0
        import sqlalchemy

        pytest.skip("PostgreSQL backends need SQLAlchemy 2.0 or newer (psycopg 3 dialect); "
                    f"this environment has {sqlalchemy.__version__}")
    import psycopg

    base = os.environ.get("TURNOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"turnout_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(base, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        service_or_skip("PostgreSQL", f"{base} did not accept a connection ({exc})")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def redis_url():
    """The local Redis (login throttle counters), or a skip naming why it is absent."""
    import redis

    url = os.environ.get("TURNOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_or_skip("Redis", f"{url} did not answer PING ({exc})")
    return url
