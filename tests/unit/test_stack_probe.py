"""`turnout status` says why a process is not healthy, and waits long enough that a busy
but working process does not read as down."""

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from shims.cli.stack import probe
from support import free_port


def health_app(status: str, body: bytes, delay: float = 0.0):
    def app(environ, start_response):
        gevent.sleep(delay)
        start_response(status, [("Content-Type", "application/json")])
        return [body]
    return app


@pytest.fixture
def serve():
    servers = []

    def start(app) -> str:
        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.stop(timeout=1)


def test_a_200_is_healthy(serve):
    assert probe(serve(health_app("200 OK", b'{"status":"ok"}'))) is None


def test_a_failing_answer_is_shown_with_its_status_and_body(serve):
    url = serve(health_app("503 Service Unavailable", b'{"status":"failing"}'))
    assert probe(url) == 'answered 503 {"status":"failing"}'


def test_a_slow_process_within_the_timeout_is_healthy(serve):
    assert probe(serve(health_app("200 OK", b"{}", delay=0.3)), timeout=2) is None


def test_a_process_slower_than_the_timeout_says_so(serve):
    url = serve(health_app("200 OK", b"{}", delay=1.0))
    assert probe(url, timeout=0.2) == "no answer within 0.2 s"


def test_nothing_listening_is_a_refused_connection():
    assert probe(f"http://127.0.0.1:{free_port()}") == "refused the connection"
