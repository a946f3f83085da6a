"""Conditional reads (ETag / If-None-Match) and gzip between services."""

from __future__ import annotations

import gzip
import json
from typing import Protocol

import gevent
import pytest
from flask import Flask
from gevent.pywsgi import WSGIServer

from shims.contract import describe, read, write
from shims.errors import ValidationError
from shims.http_cache import MAX_INFLATED_BYTES, ReadCache, inflate
from shims.remote import RemoteClient
from shims.service import install_json_errors, rpc_blueprint
from shims.transport import HttpTransport, WsgiTransport


class Notes(Protocol):
    @read
    def note(self, user_id: int) -> str: ...

    @write
    def save(self, user_id: int, text: str) -> str: ...


NOTES = describe(Notes, "notes")


class RemoteNotes(RemoteClient):
    spec = NOTES


class LocalNotes:
    def __init__(self):
        self.texts: dict[int, str] = {}
        self.reads = 0

    def note(self, user_id: int) -> str:
        self.reads += 1
        return self.texts.get(user_id, "")

    def save(self, user_id: int, text: str) -> str:
        self.texts[user_id] = text
        return text


@pytest.fixture
def notes():
    return LocalNotes()


@pytest.fixture
def service(notes):
    app = Flask(__name__)
    app.register_blueprint(rpc_blueprint([(NOTES, notes)]))
    install_json_errors(app)
    return app


def test_a_read_is_tagged_and_an_unchanged_answer_is_a_304_without_body(service, notes):
    client = service.test_client()
    first = client.post("/rpc/notes/note", json={"args": {"user_id": 1}})
    etag = first.headers["ETag"]
    again = client.post("/rpc/notes/note", json={"args": {"user_id": 1}},
                        headers={"If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")
    notes.save(1, "changed")
    changed = client.post("/rpc/notes/note", json={"args": {"user_id": 1}},
                          headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json == {"result": "changed"}


def test_writes_are_never_tagged(service):
    response = service.test_client().post("/rpc/notes/save",
                                          json={"args": {"user_id": 1, "text": "x"}})
    assert "ETag" not in response.headers


def test_the_client_reuses_its_answer_on_304_and_sees_changes(service, notes):
    remote = RemoteNotes(WsgiTransport(service))
    notes.save(1, "hello")
    assert remote.note(1) == "hello"
    assert remote.note(1) == "hello"  # a 304: the service answered without a body
    remote.save(1, "bye")
    assert remote.note(1) == "bye"
    assert notes.reads == 3


def test_large_answers_are_gzipped_for_callers_that_accept_it(service, notes):
    notes.save(1, "x" * 20_000)
    response = service.test_client().post("/rpc/notes/note", json={"args": {"user_id": 1}},
                                          headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.data)) == {"result": "x" * 20_000}


def test_small_answers_go_as_they_are(service, notes):
    """Under GZIP_MIN_BYTES compressing costs more CPU than the bytes it saves."""
    notes.save(1, "x" * 5000)
    response = service.test_client().post("/rpc/notes/note", json={"args": {"user_id": 1}},
                                          headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers
    assert response.json == {"result": "x" * 5000}


def test_gzipped_request_bodies_are_inflated(service, notes):
    body = gzip.compress(json.dumps({"args": {"user_id": 2, "text": "y" * 3000}}).encode())
    response = service.test_client().post("/rpc/notes/save", data=body, headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200 and notes.texts[2] == "y" * 3000


def test_a_gzip_bomb_or_fake_gzip_is_refused():
    with pytest.raises(ValidationError, match="inflates past"):
        inflate(gzip.compress(b"0" * (MAX_INFLATED_BYTES + 10)))
    with pytest.raises(ValidationError, match="not gzip"):
        inflate(b"plain text")


@pytest.fixture
def served(service):
    """The notes service on a real loopback socket, recording what crossed the wire."""
    seen: list[dict] = []

    def recording(environ, start_response):
        exchange = {"port": environ["REMOTE_PORT"], "path": environ["PATH_INFO"],
                    "if_none_match": environ.get("HTTP_IF_NONE_MATCH"),
                    "sent_encoding": environ.get("HTTP_CONTENT_ENCODING")}
        seen.append(exchange)

        def record_status(status, headers, *rest):
            exchange.update(status=int(status.split()[0]), answer_headers=dict(headers))
            return start_response(status, headers, *rest)

        return service(environ, record_status)

    server = WSGIServer(("127.0.0.1", 0), recording, log=None)
    server.start()
    transport = HttpTransport(f"http://127.0.0.1:{server.server_port}")
    try:
        yield RemoteNotes(transport), seen
    finally:
        transport.close()
        server.stop(timeout=1)


def test_http_transport_gzips_both_ways_and_sends_if_none_match(served, notes):
    remote, seen = served
    assert remote.save(1, "z" * 20_000) == "z" * 20_000
    assert seen[0]["sent_encoding"] == "gzip" and notes.texts[1] == "z" * 20_000
    assert seen[0]["answer_headers"]["Content-Encoding"] == "gzip"  # inflated by urllib3
    assert remote.note(1) == "z" * 20_000
    assert remote.note(1) == "z" * 20_000
    assert seen[-1]["if_none_match"] and seen[-1]["status"] == 304


def test_small_bodies_go_plain(served, notes):
    remote, seen = served
    assert remote.save(2, "short") == "short"
    assert seen[0]["sent_encoding"] is None
    assert "Content-Encoding" not in seen[0]["answer_headers"]


def test_the_read_cache_is_bounded_and_hands_out_copies():
    cache = ReadCache(size=2)
    for number in range(5):
        cache.put(str(number), f'"{number}"', [number])
    assert len(cache) == 2 and cache.held("0") is None
    _, value = cache.held("4")
    ReadCache.copy(value).append("mutated")
    assert cache.held("4") == ('"4"', [4])


class SlowConditionalTransport:
    """The in-process service, except that a conditional read waits on the wire a while,
    as a real one does under load, letting other greenlets' reads run meanwhile."""

    def __init__(self, app):
        self._inner = WsgiTransport(app)

    def post(self, path, payload, *, headers=None, fresh_connection=False):
        if headers and "If-None-Match" in headers:
            gevent.sleep(0.05)
        return self._inner.post(path, payload, headers=headers,
                                fresh_connection=fresh_connection)


def test_a_304_is_answered_even_if_the_entry_was_evicted_while_waiting_for_it(service, notes):
    """Issue 8: a 500 (KeyError) under load when the working set outgrew the cache: the
    entry whose etag was sent was evicted by other reads before its 304 came back."""
    remote = RemoteNotes(SlowConditionalTransport(service), read_cache_size=1)
    notes.save(1, "one")
    notes.save(2, "two")
    assert remote.note(1) == "one"  # held, with its etag
    waiting = gevent.spawn(remote.note, 1)  # sends the etag, waits for its 304
    gevent.sleep(0.01)
    assert remote.note(2) == "two"  # fills the one-entry cache: user 1's answer is evicted
    assert waiting.get(timeout=5) == "one"
    assert notes.reads == 3
    assert remote.note(1) == "one"  # the 304's answer was kept again


def test_writes_go_on_a_fresh_connection_reads_reuse_kept_alive_ones(served):
    """A server closing a kept-alive connection races a write sent on it, and such a write
    cannot be retried safely; a read can. Told apart by the client's port on the wire."""
    remote, seen = served
    remote.note(1)
    remote.note(1)
    remote.save(1, "one")
    remote.save(1, "two")
    first_read, second_read, first_write, second_write = (e["port"] for e in seen)
    assert first_read == second_read
    assert len({first_read, first_write, second_write}) == 3
