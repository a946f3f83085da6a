"""A keep-alive pool of the standard library's `http.client` connections to one service.

HttpTransport (shims/transport.py) sends every call between Turnout's processes through one.
Why not urllib3's pool, which it used before: B9 measured urllib3's `urlopen` at ~125 µs of
CPU per call more than a bare `http.client` call sending the same bytes (a liveness poll per
checkout through gevent's `select.poll`, Retry and Timeout objects per call, header
validation, an HTTPResponse with its decoder chain), more than the whole budget B9 allows the
kit over that floor. None of it is needed between our own services: we never retry nor
follow redirects here, we send our own well-formed headers, and we read every answer whole.

What it keeps of urllib3's behaviour: a connection found closed (or holding unread bytes)
when taken from the pool is dropped before use, as urllib3's `is_connection_dropped` does, so
a server's keep-alive timeout never fails a call; per-call connect and read timeouts; gzip
answers inflated; a connection whose answer says `Connection: close` (or whose request did)
is not kept. Failures are raised as urllib3's exception classes, so the transport maps them
alike whatever pool it is given (tests pass an urllib3-like fake). Under gevent the sockets
are gevent's, so every wait yields to the loop.

A request goes out in one write (`OneWrite`): `http.client` sends the head and then the body,
two system calls, and the service reads two segments (a wake-up each when it is idle). The
head is held and sent with the body when the body is at most MAX_JOINED_BODY bytes.
"""

from __future__ import annotations

import http.client
import ssl
import zlib
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from gevent.monkey import get_original
from urllib3 import Timeout
from urllib3.exceptions import (ConnectTimeoutError, NewConnectionError, ProtocolError,
                                ReadTimeoutError)

# The system call itself: gevent's select, even with no timeout, yields to the loop after it
# (measured: ~20 µs a checkout); a look that cannot block need not cooperate.
_select = get_original("select", "select")


class Answer(NamedTuple):
    """What the transport reads of a response (urllib3's HTTPResponse has the same names).
    A named tuple: immutable like a frozen dataclass, made at a tenth of its cost."""

    status: int
    data: bytes
    headers: http.client.HTTPMessage  # case-insensitive `get`


MAX_JOINED_BODY = 64 * 1024


class OneWrite:
    """For an `http.client` connection: a request's head is held until its body, and both
    go in one `send` (through `HTTPConnection.send`, the documented way out)."""

    _holding = False
    _head: bytes | None = None

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, *,
                encode_chunked: bool = False) -> None:
        self._holding = isinstance(body, bytes) and len(body) <= MAX_JOINED_BODY
        try:
            super().request(method, url, body, headers or {},  # type: ignore[misc]
                            encode_chunked=encode_chunked)
        except BaseException:
            self._holding, self._head = False, None  # the caller closes the connection
            raise
        head, self._head, self._holding = self._head, None, False
        if head is not None:  # no body bytes came after it
            super().send(head)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self._holding:
            self._holding, self._head = False, bytes(data)
            return
        head, self._head = self._head, None
        super().send(data if head is None else head + bytes(data))  # type: ignore[misc]


class _Connection(OneWrite, http.client.HTTPConnection):
    pass


class _TLSConnection(OneWrite, http.client.HTTPSConnection):
    pass


class KeepAlivePool:
    """Connections to one `http(s)://host:port`, at most `maxsize` kept idle (more are opened
    when a burst needs them, and closed after it, as urllib3's pool with `block=False`)."""

    def __init__(self, base_url: str, maxsize: int, ca_certs: str | None = None):
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._context = ssl.create_default_context(cafile=ca_certs) if self._https else None
        self._maxsize = maxsize
        self._idle: list[http.client.HTTPConnection] = []

    def urlopen(self, method: str, url: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: Timeout,
                **_urllib3_options: Any) -> Answer:
        """One request and its whole answer. `retries` and `redirect`, which the transport
        passes for urllib3's sake, are always off here."""
        connection = self._checkout()
        try:
            answer, reusable = self._exchange(connection, method, url, body, headers or {},
                                              timeout)
        except BaseException:
            connection.close()
            raise
        self._checkin(connection, reusable)
        return answer

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self) -> http.client.HTTPConnection:
        while self._idle:
            connection = self._idle.pop()  # the most recent: the least likely to be closed
            if _still_open(connection):
                return connection
            connection.close()
        if self._https:
            return _TLSConnection(self._host, self._port, context=self._context)
        return _Connection(self._host, self._port)

    def _checkin(self, connection: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable and len(self._idle) < self._maxsize:
            self._idle.append(connection)
        else:
            connection.close()

    def _exchange(self, connection: http.client.HTTPConnection, method: str, url: str,
                  body: bytes | None, headers: dict[str, str],
                  timeout: Timeout) -> tuple[Answer, bool]:
        where = f"{self._host}:{self._port}"
        if connection.sock is None:
            _connect(connection, timeout.connect_timeout, where)
        connection.sock.settimeout(timeout.read_timeout)
        try:
            connection.request(method, url, body, headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError as exc:  # socket.timeout: before OSError, its base class
            raise ReadTimeoutError(None, url, f"Read timed out. (read timeout="
                                   f"{timeout.read_timeout})") from exc
        except (OSError, http.client.HTTPException) as exc:  # a reset, a cut-off answer
            raise ProtocolError("Connection aborted.", exc) from exc
        if response.headers.get("Content-Encoding") == "gzip":
            data = _gunzip(data, url)
        reusable = not response.will_close and \
            headers.get("Connection", "").lower() != "close"
        return Answer(response.status, data, response.headers), reusable


def _connect(connection: http.client.HTTPConnection, seconds: float, where: str) -> None:
    connection.timeout = seconds
    try:
        connection.connect()
    except TimeoutError as exc:
        raise ConnectTimeoutError(connection, f"Connection to {where} timed out. "
                                  f"(connect timeout={seconds})") from exc
    except OSError as exc:  # refused, unreachable, a failed TLS handshake
        raise NewConnectionError(connection, f"Failed to establish a new connection: "
                                 f"{exc}") from exc


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection is readable only if the server closed it (or sent what no request
    asked for): either way it must not carry a request. One select that does not wait, as
    urllib3's `is_connection_dropped` does."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = _select([sock], [], [], 0)
    except (OSError, ValueError):  # closed under us
        return False
    return not readable


def _gunzip(data: bytes, url: str) -> bytes:
    try:
        return zlib.decompress(data, wbits=16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise ProtocolError(f"{url}: the answer says gzip but is not gzip", exc) from exc
