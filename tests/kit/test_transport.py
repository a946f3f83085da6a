"""HttpTransport over real sockets: each way a call can fail is a TransportError that says what
happened, whichever urllib3 the app runs (1.26 raises its errors while handling the socket's,
2.x `from` it). The remote client's handling of these errors, on a fake pool, is in
tests/kit/test_remote_client.py."""

from __future__ import annotations

import socket
from contextlib import closing

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from shims import deadline
from shims.errors import BadAnswer, DeadlineExceeded, TransportError
from shims.transport import HttpTransport
from support import free_port


@pytest.fixture
def hung_url():
    """A socket that accepts connections and never answers (a crash-looping service)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def answering():
    """Serves one fixed answer: `answering(status, body)` returns the server's URL."""
    servers = []

    def serve(status: str, body: bytes) -> str:
        def app(environ, start_response):
            start_response(status, [("Content-Type", "text/html")])
            return [body]

        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.stop(timeout=1)


def test_a_refused_connection_says_so_and_was_never_sent():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(TransportError) as failed:
        HttpTransport(url).post("/rpc/notes/list_notes", {"args": {}})
    assert "Connection refused" in failed.value.message
    assert failed.value.sent is False


def test_a_service_that_never_answers_times_out_naming_the_timeout(hung_url):
    transport = HttpTransport(hung_url, read_timeout=0.2)
    with gevent.Timeout(10), pytest.raises(TransportError) as failed:
        transport.post("/rpc/notes/list_notes", {"args": {}})
    assert "did not answer within 0.2s" in failed.value.message
    assert failed.value.retryable is False  # it may have been applied: never sent again
    transport.close()


def test_the_requests_deadline_cuts_the_wait_short(hung_url):
    transport = HttpTransport(hung_url, read_timeout=5.0)
    with gevent.Timeout(10), deadline.within(0.2), pytest.raises(DeadlineExceeded) as cut:
        transport.post("/rpc/notes/list_notes", {"args": {}})
    assert "budget" in cut.value.message
    transport.close()


def test_a_gateway_page_is_a_transport_error_and_any_other_non_json_a_bad_answer(answering):
    gateway = HttpTransport(answering("502 Bad Gateway", b"<html>bad gateway</html>"))
    with pytest.raises(TransportError) as failed:
        gateway.post("/rpc/notes/list_notes", {"args": {}})
    assert not isinstance(failed.value, BadAnswer) and "HTTP 502" in failed.value.message
    garbled = HttpTransport(answering("200 OK", b"<html>surprise</html>"))
    with pytest.raises(BadAnswer):
        garbled.post("/rpc/notes/list_notes", {"args": {}})
    gateway.close()
    garbled.close()
