"""One write per answer: a response's head goes out with its first body bytes.

gunicorn writes a response's status line and headers in one `sendall` and its body in
another, so every answer costs two system calls and, with TCP_NODELAY, two segments the
client reads apart. Between Turnout's processes an answer is small (a month of runs is
2.5 KB) and each process answers many; on loopback the sender's `send` carries the whole
TCP stack for both ends, and profiles of a data service under load spent 14-16% of its CPU
in those sends (issue 12, docs/benchmarks.md). aiohttp and pitchfork coalesce the same way.

`install()` (called in each worker by shims.gunicorn_conf) makes gunicorn's HTTP/1 writer
hold the head until the first body bytes, or the end of the response, and send both in
one `sendall` when the body bytes are at most MAX_COALESCED_BODY (larger ones follow the
head in a write of their own, so a big body is never copied to be joined). Anything else a
response does with the socket (sendfile, a 100-continue) first sends a head it holds, so
the bytes on the wire and their order are exactly gunicorn's. HTTP/2 keeps its own writer.
"""

from __future__ import annotations

from typing import Any

MAX_COALESCED_BODY = 64 * 1024


class HeadWithFirstBody:
    """The client socket as one response writes to it: the head it is told to hold waits
    for the next write, and goes out with it."""

    __slots__ = ("_head", "_holding", "_sock")

    def __init__(self, sock: Any):
        self._sock = sock
        self._head: bytes | None = None
        self._holding = False

    def hold_next_write(self) -> None:
        self._holding = True

    def sendall(self, data: Any) -> None:
        if self._holding:
            self._holding = False
            self._head = bytes(data)
            return
        head, self._head = self._head, None
        if head is not None:
            if len(data) <= MAX_COALESCED_BODY:
                data = head + bytes(data)
            else:
                self._sock.sendall(head)
        self._sock.sendall(data)

    def release(self) -> None:
        """Sends a head still held (an answer with no body bytes, a 304, a HEAD)."""
        head, self._head = self._head, None
        if head is not None:
            self._sock.sendall(head)

    def __getattr__(self, name: str) -> Any:
        self.release()  # sendfile, send, fileno...: whatever comes next goes after the head
        return getattr(self._sock, name)


def response_class() -> type:
    from gunicorn.http import wsgi

    class HeadWithBodyResponse(wsgi.Response):
        """gunicorn's HTTP/1 response, writing through HeadWithFirstBody."""

        def __init__(self, req: Any, sock: Any, cfg: Any, *args: Any):
            super().__init__(req, HeadWithFirstBody(sock), cfg, *args)

        def send_headers(self) -> None:
            if not self.headers_sent:
                self.sock.hold_next_write()
            super().send_headers()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.sock.release()

    return HeadWithBodyResponse


def install() -> None:
    """In a worker: gunicorn's HTTP/1 responses (made by `wsgi.create`, which looks the
    class up when called) write their head with their body."""
    from gunicorn.http import wsgi

    if not getattr(wsgi.Response, "turnout_head_with_body", False):
        cls = response_class()
        cls.turnout_head_with_body = True  # type: ignore[attr-defined]
        wsgi.Response = cls  # type: ignore[misc]
