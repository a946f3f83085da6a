"""One write per answer (shims/gunicorn_response.py): gunicorn's own HTTP/1 response, its
head held until the first body bytes; the bytes on the wire and their order unchanged."""

from __future__ import annotations

import re
import tempfile
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.http import wsgi

from shims.gunicorn_response import MAX_COALESCED_BODY, install, response_class


class RecordingSocket:
    def __init__(self):
        self.writes: list[bytes] = []

    def sendall(self, data):
        self.writes.append(bytes(data))

    def sendfile(self, file, offset=0, count=None):
        file.seek(offset)
        self.writes.append(file.read(count))

    def wire(self) -> bytes:
        """What went out, but the Date header: the two writers may answer a second apart."""
        return re.sub(rb"\r\nDate: [^\r]*", b"", b"".join(self.writes), count=1)


def request(method="GET", version=(1, 1)):
    return SimpleNamespace(method=method, version=version, headers=[], should_close=lambda: False,
                           path="/", query="", uri="/")


def respond(cls, method, status, headers, body_parts, file_body=None):
    sock = RecordingSocket()
    response = cls(request(method), sock, Config())
    response.start_response(status, headers)
    if file_body is not None:
        response.write_file(wsgi.FileWrapper(file_body))
    for part in body_parts:
        response.write(part)
    response.close()
    return sock


def same_as_gunicorn(method, status, headers, body_parts, file_body_bytes=None):
    """Our writer against gunicorn's own: the same bytes; and how many writes ours made."""
    ours_cls, theirs_cls = response_class(), wsgi.Response

    def run(cls):
        if file_body_bytes is None:
            return respond(cls, method, status, headers, body_parts)
        with tempfile.TemporaryFile() as file_body:
            file_body.write(file_body_bytes)
            file_body.seek(0)
            return respond(cls, method, status, headers, body_parts, file_body)

    ours, theirs = run(ours_cls), run(theirs_cls)
    assert ours.wire() == theirs.wire()
    assert len(theirs.writes) >= 2 or not body_parts  # gunicorn: head, then body
    return ours.writes


def test_a_small_answer_is_one_write():
    writes = same_as_gunicorn("GET", "200 OK", [("Content-Length", "5")], [b"hello"])
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\nhello")


def test_an_answer_without_body_bytes_still_sends_its_head():
    for method, status, headers in (("GET", "304 Not Modified", [("ETag", '"x"')]),
                                    ("HEAD", "200 OK", [("Content-Length", "5")]),
                                    ("GET", "204 No Content", [])):
        writes = same_as_gunicorn(method, status, headers, [])
        assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 " + status.encode())


def test_a_streamed_answer_sends_its_head_with_the_first_chunk():
    writes = same_as_gunicorn("GET", "200 OK", [], [b"one", b"two"])  # chunked: no length
    assert writes[0].startswith(b"HTTP/1.1 200 OK") and b"one" in writes[0]
    assert b"two" not in writes[0]


def test_a_large_body_follows_its_head_without_being_joined():
    body = b"x" * (MAX_COALESCED_BODY + 1)
    writes = same_as_gunicorn("GET", "200 OK", [("Content-Length", str(len(body)))], [body])
    assert len(writes) == 2 and writes[1] == body


def test_a_file_answer_sends_the_head_before_the_file():
    content = b"file bytes" * 100
    writes = same_as_gunicorn("GET", "200 OK", [("Content-Length", str(len(content)))], [],
                              file_body_bytes=content)
    assert writes[-1].endswith(content)


def test_install_makes_gunicorns_writer_ours_once():
    original = wsgi.Response
    try:
        install()
        installed = wsgi.Response
        install()
        assert wsgi.Response is installed and installed is not original
        assert issubclass(installed, original)
    finally:
        wsgi.Response = original
