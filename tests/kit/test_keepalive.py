"""The transport's keep-alive pool (shims/keepalive.py) over real sockets: connections are
reused, one the server closed while idle is never used again, writes' connections end with
their answer, gzip answers arrive inflated, and failures are urllib3's exception classes."""

from __future__ import annotations

import gzip
import http.client
import socket
from contextlib import closing

import gevent
import pytest
from gevent.pywsgi import WSGIServer
from urllib3 import Timeout
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from shims.keepalive import MAX_JOINED_BODY, KeepAlivePool, OneWrite
from shims.transport import HttpTransport
from support import free_port

TIMEOUT = Timeout(connect=1.0, read=2.0)


class Peers:
    """A WSGI server that answers JSON naming the client port each request came from."""

    def __init__(self, gzip_answers: bool = False):
        self.gzip_answers = gzip_answers
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ, start_response):
        body = b'{"result": "%d"}' % int(environ["REMOTE_PORT"])
        headers = [("Content-Type", "application/json"), ("ETag", '"v1"')]
        if self.gzip_answers:
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]


@pytest.fixture
def peers():
    servers = []

    def serve(**options) -> Peers:
        servers.append(Peers(**options))
        return servers[-1]

    yield serve
    for peer in servers:
        peer.server.stop(timeout=1)


def _port(answer) -> str:
    return answer.data.decode()


def test_a_kept_alive_connection_carries_the_next_call(peers):
    server = peers()
    pool = KeepAlivePool(server.url, 4)
    first = pool.urlopen("POST", "/rpc/x/y", body=b"{}", headers={}, timeout=TIMEOUT)
    second = pool.urlopen("POST", "/rpc/x/y", body=b"{}", headers={}, timeout=TIMEOUT)
    assert first.status == 200 and _port(first) == _port(second)
    assert first.headers.get("etag") == '"v1"'  # case-insensitive, as urllib3's
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_not_used():
    """As gunicorn does after its keep-alive timeout: the answer says nothing of closing,
    then the server closes the idle connection."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def answer_once_then_close():
            for number in (b"1", b"2"):
                connection, _ = listener.accept()
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + number)
                gevent.sleep(0.01)
                connection.close()

        server = gevent.spawn(answer_once_then_close)
        pool = KeepAlivePool(f"http://127.0.0.1:{listener.getsockname()[1]}", 2)
        with gevent.Timeout(10):
            assert pool.urlopen("POST", "/", body=b"{}", headers={}, timeout=TIMEOUT).data == b"1"
            gevent.sleep(0.1)
            assert pool.urlopen("POST", "/", body=b"{}", headers={}, timeout=TIMEOUT).data == b"2"
        server.join()


def test_a_request_that_says_close_does_not_keep_its_connection(peers):
    server = peers()
    pool = KeepAlivePool(server.url, 4)
    ports = {_port(pool.urlopen("POST", "/rpc/x/y", body=b"{}", headers={"Connection": "close"},
                                timeout=TIMEOUT)) for _ in range(3)}
    assert len(ports) == 3


def test_no_more_idle_connections_are_kept_than_the_pool_size(peers):
    server = peers()
    pool = KeepAlivePool(server.url, 2)
    calls = [gevent.spawn(pool.urlopen, "POST", "/rpc/x/y", body=b"{}", headers={},
                          timeout=TIMEOUT) for _ in range(6)]
    gevent.joinall(calls, raise_error=True)
    assert len(pool._idle) <= 2
    pool.close()
    assert not pool._idle


def test_a_gzip_answer_arrives_inflated(peers):
    server = peers(gzip_answers=True)
    reply = HttpTransport(server.url).post("/rpc/x/y", {"args": {}})
    assert reply.status == 200 and reply.body["result"].isdigit()


def test_failures_are_urllib3s_exceptions():
    refused = KeepAlivePool(f"http://127.0.0.1:{free_port()}", 2)
    with pytest.raises(NewConnectionError) as failed:
        refused.urlopen("POST", "/", body=b"{}", headers={}, timeout=TIMEOUT)
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        hung = KeepAlivePool(f"http://127.0.0.1:{listener.getsockname()[1]}", 2)
        with gevent.Timeout(10), pytest.raises(ReadTimeoutError):
            hung.urlopen("POST", "/", body=b"{}", headers={},
                         timeout=Timeout(connect=1.0, read=0.1))


def test_an_answer_cut_off_is_a_protocol_error():
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def half_answer():
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"res")
            connection.close()

        server = gevent.spawn(half_answer)
        pool = KeepAlivePool(f"http://127.0.0.1:{listener.getsockname()[1]}", 2)
        with gevent.Timeout(10), pytest.raises(ProtocolError):
            pool.urlopen("POST", "/", body=b"{}", headers={}, timeout=TIMEOUT)
        server.join()


class _Written:
    def __init__(self):
        self.writes: list[bytes] = []

    def sendall(self, data):
        self.writes.append(bytes(data))


class _RecordingConnection(OneWrite, http.client.HTTPConnection):
    pass


def _written(body, method="POST"):
    connection = _RecordingConnection("127.0.0.1", 9)
    connection.sock = _Written()  # as if connected: nothing is sent anywhere
    connection.request(method, "/rpc/runs/list_runs", body, {"Content-Type": "application/json"})
    return connection.sock.writes


def test_a_request_with_a_body_goes_out_in_one_write():
    [write] = _written(b'{"args": {}}')
    assert write.startswith(b"POST /rpc/runs/list_runs HTTP/1.1\r\n")
    assert write.endswith(b'\r\n\r\n{"args": {}}')


def test_a_request_without_body_bytes_still_sends_its_head():
    for body in (None, b""):
        [write] = _written(body, method="GET")
        assert write.startswith(b"GET /rpc/runs/list_runs HTTP/1.1\r\n")
        assert write.endswith(b"\r\n\r\n")


def test_a_large_body_follows_its_head_without_being_joined():
    body = b"x" * (MAX_JOINED_BODY + 1)
    head, sent = _written(body)
    assert head.endswith(b"\r\n\r\n") and sent == body
