"""Traces across the hops (shims/telemetry.py, shims/traced_requests.py): a request's
traceparent reaches every process the kit calls for it, each process continues the trace,
and what each step decided (route, shadow, mirror write) is on its span.

The processes here are Flask apps in this process joined by WsgiTransport: the headers are
the only way a trace crosses, exactly as over HTTP (a service that got no traceparent would
start a trace of its own, which these tests would see).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, SpanKind

from shims import telemetry
from shims.auth import TokenVerifier
from shims.breaker import CircuitBreaker
from shims.errors import TransportError
from shims.flags.cache import FlagCache
from shims.flags.model import FeatureInfo
from shims.logs import json_formatter
from shims.metrics import TurnoutMetrics
from shims.mirror import Lease, MirrorApplier, mirror_channels
from shims.router import Router, Sides
from shims.service_app import service_app
from shims.shadow import ShadowRunner
from shims.sync import SYNC, RemoteDataSync
from shims.transport import WsgiTransport
from notes_app import Side
from support import LOOPBACK, TOKEN_ISSUER, eventually, jwks_of, mint_token, rsa_private_key
from test_auth import JWKS_URL, TOKEN_URL, credentials, token_answer
from test_extension import monolith, set_mode
from test_router import (NOTES, FakeFlagSource, FakeNotes, FakeSync, NotesMirror, build,
                         open_breaker, seed_both)
from webtest import TestApp

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
INCOMING = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}


def named(recorder, name: str) -> ReadableSpan:
    return recorder.named(name)


def hex_id(span_id: int) -> str:
    return format(span_id, "016x")


def in_a_request():
    """The span of a request this process serves (recorded: the tests sample every trace)."""
    return telemetry.current_span(telemetry.TRACER.start_span("request"))


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Turnout's log records from INFO, rendered as a server process renders them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("turnout")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def lines(stream: io.StringIO, event: str) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()
            if f'"event": "{event}"' in line]


# --- a remote call --------------------------------------------------------------------------

def test_a_remote_call_sends_the_incoming_trace_and_the_service_continues_it(tmp_path, spans):
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann", headers=INCOMING)

    request = named(spans, "GET /greet/<name>")
    route = named(spans, "turnout greetings.greet")
    call = named(spans, "POST /rpc/greetings/greet")
    served = named(spans, "POST /rpc/<contract>/<method_name>")
    assert {span.context.trace_id for span in spans.spans} == {int(TRACE_ID, 16)}
    assert (request.kind, hex_id(request.parent.span_id)) == (SpanKind.SERVER, CALLER_SPAN)
    assert route.parent.span_id == request.context.span_id
    assert (call.kind, call.parent.span_id) == (SpanKind.CLIENT, route.context.span_id)
    # The service's span hangs under the client span only if its traceparent said so.
    assert served.kind == SpanKind.SERVER and served.parent.is_remote
    assert served.parent.span_id == call.context.span_id
    assert served.attributes["http.response.status_code"] == 200


def test_a_request_without_traceparent_starts_the_trace_its_calls_carry(tmp_path, spans):
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann")

    request = named(spans, "GET /greet/<name>")
    served = named(spans, "POST /rpc/<contract>/<method_name>")
    assert request.parent is None
    assert served.context.trace_id == request.context.trace_id


class DroppingTracer(NoOpTracer):
    """The API's no-op tracer as it was up to 1.2x: the caller's trace is dropped."""

    def start_span(self, *args, **kwargs):
        return INVALID_SPAN


def test_without_an_sdk_the_callers_traceparent_still_passes_on(tmp_path, monkeypatch,
                                                                 log_lines):
    monkeypatch.setattr(telemetry, "TRACER", DroppingTracer())
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann", headers=INCOMING)
    assert {line["trace_id"] for line in lines(log_lines, "request_served")} == {TRACE_ID}


def test_a_malformed_traceparent_starts_a_new_trace(tmp_path, spans):
    app, _ = monolith(tmp_path)
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann",
                                             headers={"traceparent": "00-nonsense-01"})
    request = named(spans, "GET /greet/<name>")
    assert request.parent is None and request.context.trace_id != int(TRACE_ID, 16)


def test_a_request_leaves_no_span_behind_in_its_greenlet(tmp_path, spans):
    """gevent's server answers a kept-alive connection's requests in one greenlet: the next
    request must not find the last one's span current, or it would join its trace."""
    app, _ = monolith(tmp_path)
    web = TestApp(app, extra_environ=LOOPBACK)
    web.get("/greet/ann", headers=INCOMING)
    web.get("/greet/bob")
    assert not telemetry.active_span().get_span_context().is_valid
    first, second = [span for span in spans.spans if span.name == "GET /greet/<name>"]
    assert second.parent is None and second.context.trace_id != first.context.trace_id


def test_every_request_log_line_carries_its_trace_and_span(tmp_path, spans, log_lines):
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann", headers=INCOMING)

    served = {line["path"]: line for line in lines(log_lines, "request_served")}
    assert set(served) == {"/greet/ann", "/rpc/greetings/greet"}
    for path, span_name in (("/greet/ann", "GET /greet/<name>"),
                            ("/rpc/greetings/greet", "POST /rpc/<contract>/<method_name>")):
        assert served[path]["trace_id"] == TRACE_ID
        assert served[path]["span_id"] == hex_id(named(spans, span_name).context.span_id)
        assert served[path]["status"] == 200


def test_in_an_unsampled_trace_nothing_is_recorded_but_the_ids_still_cross(tmp_path, spans,
                                                                           log_lines):
    """What a process without an exporter starts (or a caller that samples it out): no
    span costs anything, and every log line of every hop still shares the trace id."""
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get(
        "/greet/ann", headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-00"})
    assert not spans.spans
    served = lines(log_lines, "request_served")
    assert [line["path"] for line in served] == ["/rpc/greetings/greet", "/greet/ann"]
    assert {line["trace_id"] for line in served} == {TRACE_ID}


def test_the_route_span_says_which_side_was_chosen_and_why(tmp_path, spans):
    app, _ = monolith(tmp_path)
    set_mode(app, "canary", 100)
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann")
    attributes = named(spans, "turnout greetings.greet").attributes
    assert attributes["turnout.feature"] == "greetings"
    assert (attributes["turnout.mode"], attributes["turnout.percent"]) == ("canary", 100.0)
    assert (attributes["turnout.side"], attributes["turnout.served_by"]) == ("remote", "remote")
    assert attributes["turnout.read"] is True


def test_a_fallback_is_on_the_route_span_with_its_reason(spans):
    t = build("remote")
    seed_both(t)
    t.remote.fail = TransportError("read timed out")
    with in_a_request():
        t.router.get(user_id=7)
    attributes = named(spans, "turnout notes.get").attributes
    assert attributes["turnout.side"] == "remote"
    assert (attributes["turnout.served_by"], attributes["turnout.fallback"]) == (
        "local", "transport_error")


def test_with_the_breaker_open_the_route_span_says_local_and_why(spans):
    t = build("remote")
    seed_both(t)
    open_breaker(t)
    spans.spans.clear()
    with in_a_request():
        t.router.get(user_id=7)
    attributes = named(spans, "turnout notes.get").attributes
    assert (attributes["turnout.mode"], attributes["turnout.side"]) == ("remote", "local")
    assert attributes["turnout.fallback"] == "breaker_open"


def test_a_contract_refusal_is_an_outcome_not_a_failed_span(tmp_path, spans):
    app, _ = monolith(tmp_path)
    set_mode(app, "remote")
    TestApp(app, extra_environ=LOOPBACK).get("/greet/nobody", expect_errors=True)
    route = named(spans, "turnout greetings.greet")
    assert route.attributes["turnout.outcome"] == "not_found"
    assert route.status.is_ok


# --- a shadow, in its own greenlet ----------------------------------------------------------

def test_a_shadow_continues_the_request_trace_and_records_its_outcome(tmp_path, spans):
    app, _ = monolith(tmp_path)
    set_mode(app, "shadow")  # local answers "hello ann!", the service's shadow "hi ann?"
    TestApp(app, extra_environ=LOOPBACK).get("/greet/ann", headers=INCOMING)
    assert app.extensions["turnout"].drain_shadows() == 0

    route = named(spans, "turnout greetings.greet")
    shadow = named(spans, "turnout shadow greetings.greet")
    # The shadow's call, then the mismatch's recheck a second later: both in the trace.
    served = [span for span in spans.spans if span.name == "POST /rpc/<contract>/<method_name>"]
    assert len(served) == 2, [span.name for span in spans.spans]
    assert route.attributes["turnout.shadow"] == "remote"
    assert shadow.context.trace_id == int(TRACE_ID, 16)
    assert shadow.parent.span_id == route.context.span_id
    assert shadow.attributes["turnout.shadow.result"] == "mismatch"
    [outcome] = [e for e in shadow.events if e.name == "turnout.shadow"]
    assert outcome.attributes["turnout.shadow.differences"] == ("$.result.text",)
    assert {span.context.trace_id for span in served} == {int(TRACE_ID, 16)}


# --- a mirror write -------------------------------------------------------------------------

def notes_router(remote_sync) -> SimpleNamespace:
    """A data-owning feature in dualwrite: the local side answers, the write is mirrored to
    `remote_sync`."""
    local, metrics = FakeNotes("local", 1000), TurnoutMetrics()
    router = Router(FeatureInfo("notes", owns_data=True), NOTES,
                    Sides(local, FakeNotes("remote", 5000), FakeSync(local), remote_sync),
                    flags=FlagCache(FakeFlagSource("dualwrite"), refresh_interval=0),
                    breaker=CircuitBreaker("notes"), metrics=metrics,
                    shadow=ShadowRunner("notes", metrics), mirror=NotesMirror())
    return SimpleNamespace(router=router)


def test_a_mirror_push_carries_the_trace_and_its_outcome_is_on_the_route_span(spans):
    service_side = FakeSync(FakeNotes("service", 9000))
    service = service_app("notes", {"REQUEST_DEADLINE": 5.0}, [(SYNC, service_side)],
                          title="notes", description="test", guard=lambda method: None)
    t = notes_router(RemoteDataSync(WsgiTransport(service)))
    with in_a_request() as request:
        t.router.save(7, "tempo")

    route = named(spans, "turnout notes.save")
    served = named(spans, "POST /rpc/<contract>/<method_name>")
    assert service_side.applied, "the push reached the service"
    assert route.parent.span_id == request.get_span_context().span_id
    assert served.context.trace_id == request.get_span_context().trace_id
    assert route.attributes["turnout.mirror_to"] == "remote"
    [mirrored] = [e for e in route.events if e.name == "turnout.mirror"]
    assert dict(mirrored.attributes) == {"turnout.mirror.target": "remote",
                                         "turnout.mirror.outcome": "ok",
                                         "turnout.mirror.rows": 1}


def test_a_deferred_mirror_push_is_on_the_route_span(spans):
    failing = FakeSync(FakeNotes("remote", 5000))
    failing.fail = TransportError("connection refused", sent=False)
    with in_a_request():
        notes_router(failing).router.save(7, "tempo")
    route = named(spans, "turnout notes.save")
    assert route.attributes["turnout.mirror.outcome"] == "deferred"


# --- the token dealer and its keys ----------------------------------------------------------

def traceparent_parent(header: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent header."""
    _version, trace_id, parent, _flags = header.split("-")
    return trace_id, parent


def test_a_token_fetch_sends_the_trace_from_a_client_span_of_its_own(spans, requests_mock):
    requests_mock.post(TOKEN_URL, json=token_answer())
    with in_a_request() as request:
        credentials().headers()
    fetch = named(spans, "POST token")
    sent = requests_mock.last_request.headers["traceparent"]
    assert fetch.kind == SpanKind.CLIENT
    assert fetch.parent.span_id == request.get_span_context().span_id
    assert traceparent_parent(sent) == (format(fetch.context.trace_id, "032x"),
                                        hex_id(fetch.context.span_id))


def test_a_jwks_fetch_sends_the_trace(spans, requests_mock):
    requests_mock.get(JWKS_URL, json=jwks_of({"a": rsa_private_key("a")}))
    verifier = TokenVerifier(JWKS_URL, TOKEN_ISSUER, "dataservice")
    with in_a_request() as request:
        verifier.verify(mint_token(now=time.time()))
    sent = requests_mock.last_request.headers["traceparent"]
    assert traceparent_parent(sent)[0] == format(request.get_span_context().trace_id, "032x")
    assert named(spans, "GET jwks").parent.span_id == request.get_span_context().span_id


def test_outside_any_trace_a_fetch_makes_no_span_and_sends_no_traceparent(spans,
                                                                          requests_mock):
    """A CLI's calls, say: nothing would ever see such a span."""
    requests_mock.post(TOKEN_URL, json=token_answer())
    credentials().headers()
    assert not spans.spans
    assert "traceparent" not in requests_mock.last_request.headers


# --- background work ------------------------------------------------------------------------

class HeaderSpy:
    """WSGI middleware keeping the traceparent of every request it passes on."""

    def __init__(self, app):
        self.app, self.seen = app, []

    def __call__(self, environ, start_response):
        self.seen.append(environ.get("HTTP_TRACEPARENT"))
        return self.app(environ, start_response)


def test_the_mirror_appliers_rounds_are_traced_but_never_recorded(tmp_path, spans):
    """Its polls of the other side, twice a second, would bury the requests' traces."""
    monolith_side, service_side = Side(tmp_path / "monolith.db"), Side(tmp_path / "service.db")
    spy = HeaderSpy(service_app("notes", {"REQUEST_DEADLINE": 5.0},
                                [(SYNC, service_side.sync)], title="notes",
                                description="test", guard=lambda method: None))
    remote = RemoteDataSync(WsgiTransport(spy))
    lease = Lease(monolith_side.engine, "mirror:notes", holder="worker-1")
    lease.create_schema()
    applier = MirrorApplier("notes", mirror_channels("notes", monolith_side.sync, remote),
                            lambda: ("dualwrite", False), lease, interval=0.01)
    applier.start()
    try:
        eventually(lambda: spy.seen, "the applier called the service", 5)
    finally:
        applier.stop()
        monolith_side.close()
        service_side.close()
    _trace_id, _parent, flags = spy.seen[0].split("-")[1:]
    assert flags == "00"  # not sampled: the service records nothing either
    assert not [span for span in spans.spans if span.name.startswith("POST /rpc/")]
