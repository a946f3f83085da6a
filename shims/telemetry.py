"""Traces across the hops: one W3C `traceparent` from the first request to the last service.

Every request a Turnout app serves starts a trace or continues its caller's
(shims/traced_requests.py); every call the kit makes to another of its processes (a remote
contract call, a mirror push, a service's call back to the monolith's `/rpc`, a token or JWKS
fetch) sends it, from a CLIENT span of its own (`client_span`). OpenTelemetry's API makes the
spans and its W3C TraceContext propagator writes and reads the headers; nothing here
hand-rolls them.

**Export** is off unless the standard variables turn it on (`configure`, called by each
wsgi.py): `OTEL_TRACES_EXPORTER=otlp` sends spans over OTLP/HTTP to
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`), with the exporter's own
`OTEL_EXPORTER_OTLP_*` and the batch processor's `OTEL_BSP_*` settings. Without an exporter
the ids are still made (log lines carry them, the next hop continues the trace) but a new
trace is not sampled: its spans cost no recording, and only a caller's sampled traceparent
makes this process record (and pass the decision on).

**gevent.** The context lives in context variables, which greenlet keeps per greenlet. A new
greenlet starts with an empty context, so whoever spawns work for a request hands the
request's context over (`current_context`, then `attached` in the new greenlet: the
shadow does). Once gevent has patched `threading`, the BatchSpanProcessor's thread is a
greenlet and its export's socket is cooperative. That processor must not be made before a
fork: its fork hook restarts the thread in the child, which under gevent fails with a
KeyError in `threading._limbo` or an AssertionError in `_notify_links`
(open-telemetry/opentelemetry-python#3884, #3897, #4298). `configure` runs in each wsgi.py,
in the gunicorn worker, after the fork (circus.ini runs gunicorn without --preload).

**Forks after that.** The SDK's provider and batch processor register `os.register_at_fork`
hooks that, in the child, detect the process's resource and restart the export thread, and
under gevent both wait on a greenlet: the child's hub then runs copies of the parent's
greenlets, on the sockets it shares with the parent, before the child gets to `exec`. A
worker that ran `subprocess.run` while serving had a copy of every request in flight run in
the child, sending its calls again and reading answers meant for the parent (a test client
saw one request's answer arrive as another's). So `build_provider` makes them without those
hooks (`without_fork_hooks`): a worker forks only to `exec` (gevent's `subprocess`), and
that child needs neither a resource nor an exporter; one that forks to go on serving must
configure its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (NonRecordingSpan, Span, SpanContext, SpanKind, Status,
                                 StatusCode, TraceFlags)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shims.settings import ConfigError

# A proxy until a provider is set (by `configure`, or by the team's own set-up): no I/O.
TRACER = trace.get_tracer("turnout")
# W3C TraceContext alone, not `opentelemetry.propagate`'s global set: that one loads the
# propagators named by OTEL_PROPAGATORS from package entry points when first imported.
_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
EXPORTERS = ("none", "otlp")
OTLP_PROTOCOL = "http/protobuf"


def configure(service_name: str) -> TracerProvider | None:
    """Server processes (each wsgi.py): the provider of this process's spans, exporting
    them as the OTEL_* variables say. None when the app already set a provider of its own
    (Turnout's spans join it) or `OTEL_SDK_DISABLED=true` (traceparents still pass through,
    unchanged). `OTEL_SERVICE_NAME`, if set, replaces `service_name`: under circus every
    process inherits it, so set it only where one process runs per environment."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    provider = build_provider(service_name)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def build_provider(service_name: str) -> TracerProvider | None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = _exporter()
    # No exporter: new traces unsampled (ids without recording); a caller's sampled
    # traceparent is honoured. An exporter: OTEL_TRACES_SAMPLER, parent-based always-on
    # by default.
    sampler = None if exporter is not None else ParentBased(ALWAYS_OFF)
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    resource = Resource.create({SERVICE_NAME: name})
    with without_fork_hooks():
        provider = TracerProvider(sampler=sampler, resource=resource)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@contextmanager
def without_fork_hooks() -> Iterator[None]:
    """The SDK objects made in this block register no `os.register_at_fork` hook (the
    module's docstring says why: under gevent, they run the parent's greenlets in a child).
    The SDK has no switch for it, so `os.register_at_fork` is a no-op for the block: make
    them while the process starts, before it serves anything. A team that sets its own
    provider in a gevent worker makes it (and its processors) in this block too."""
    register: Callable[..., None] = os.register_at_fork
    os.register_at_fork = _ignore_fork_hook  # type: ignore[assignment]
    try:
        yield
    finally:
        os.register_at_fork = register


def _ignore_fork_hook(**_hooks: Callable[[], object]) -> None:
    return None


def _exporter() -> SpanExporter | None:
    names = {name.strip().lower()
             for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")} - {""}
    unknown = sorted(names - set(EXPORTERS))
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not one Turnout "
                          f"ships; use {' or '.join(EXPORTERS)}")
    if "otlp" not in names:
        return None
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or OTLP_PROTOCOL)
    if protocol.strip() != OTLP_PROTOCOL:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: Turnout exports over "
                          f"{OTLP_PROTOCOL} only (point it at the collector's HTTP port, 4318)")
    try:  # the `otlp` extra: protobuf and its kin, which a team need not install otherwise
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError("OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: "
                          "pip install 'turnout[otlp]'") from exc
    return OTLPSpanExporter()


# --- across the hops ---------------------------------------------------------------------

class _EnvironGetter(Getter[Mapping[str, Any]]):
    """Reads `traceparent` and `tracestate` from a WSGI environ (HTTP_TRACEPARENT...)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


_ENVIRON = _EnvironGetter()


def incoming_context(environ: Mapping[str, Any]) -> otel_context.Context:
    """The caller's trace, from the request's headers (an empty context if it sent none,
    or a malformed one: the request then starts a trace of its own)."""
    return _PROPAGATOR.extract(environ, getter=_ENVIRON)


def outgoing_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming the current span; none outside a trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def current_context() -> otel_context.Context:
    """The caller's context, to hand to a greenlet it spawns (see the module's docstring)."""
    return otel_context.get_current()


@contextmanager
def attached(context: otel_context.Context) -> Iterator[None]:
    """`context` current for the block, in this greenlet."""
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def unsampled() -> Iterator[None]:
    """Work outside any request (a mirror applier's round) inside a trace of its own that
    says "not sampled": its log lines and calls share one trace id, but no process records
    it, whatever its sampler (parent-based, as by default): an applier polling the other
    side twice a second would bury the requests' traces."""
    span_context = SpanContext(trace_id=_IDS.generate_trace_id(),
                               span_id=_IDS.generate_span_id(), is_remote=False,
                               trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with attached(trace.set_span_in_context(NonRecordingSpan(span_context))):
        yield


@contextmanager
def current_span(span: Span) -> Iterator[Span]:
    """`span` current for the block, ended after it. Unlike the API's `use_span`, an
    exception does not mark it failed: a contract's refusal (a 404, a 409) is an answer;
    callers mark real failures with `failed`."""
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


def start_span(name: str, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, Any] | None = None,
               context: otel_context.Context | None = None) -> Span:
    """A new span (a child of `context`, by default the current one), or the parent itself
    where the tracer makes none: without an SDK in the process (OTEL_SDK_DISABLED, an app
    that never configured) the API's no-op tracer dropped the parent's trace before 1.2x,
    and the trace must still pass on."""
    span = TRACER.start_span(name, context=context, kind=kind, attributes=attributes)
    if span.get_span_context().is_valid:
        return span
    # A stand-in with the parent's ids, never the parent itself: whoever ends this ends it.
    return NonRecordingSpan(trace.get_current_span(context).get_span_context())


@contextmanager
def child_span(name: str, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span of the current trace, current for the block, if that trace is recorded; else
    the current span itself, whose attributes and events cost nothing (outside any trace,
    or in one nothing records, a span of its own would cost its ids for no one)."""
    parent = trace.get_current_span()
    if not sampled(parent):
        yield parent
        return
    with current_span(start_span(name, kind, attributes)) as span:
        yield span


@contextmanager
def client_span(method: str, url: str, name: str) -> Iterator[Span]:
    """A CLIENT span for one request to another process (`child_span`), current while it is
    sent, so the `outgoing_headers` sent with it name it as the callee's parent."""
    with child_span(name, SpanKind.CLIENT, attributes={
            "http.request.method": method, "url.full": url}) as span:
        if span.is_recording():
            parts = urlsplit(url)
            span.set_attribute("server.address", parts.hostname or "")
            span.set_attribute("server.port",
                               parts.port or (443 if parts.scheme == "https" else 80))
        yield span


def sampled(span: Span) -> bool:
    """Whether `span`'s trace is recorded: its sampled flag, not `is_recording()`, which an
    ended span answers False (the shadow's parent ends before the shadow compares)."""
    return span.get_span_context().trace_flags.sampled


def recorded() -> bool:
    """Whether the current trace is recorded (`sampled` of the current span): if not, a
    span of its own would be the current one (`child_span`)."""
    return trace.get_current_span().get_span_context().trace_flags.sampled


def active_span() -> Span:
    """The current span (a no-op one outside any trace)."""
    return trace.get_current_span()


def failed(span: Span, error: BaseException, description: str | None = None) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(Status(StatusCode.ERROR, description or str(error)[:200]))


def log_ids() -> dict[str, str]:
    """The current trace and span ids as log lines carry them (W3C hex), or nothing."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {"trace_id": format(span_context.trace_id, "032x"),
            "span_id": format(span_context.span_id, "016x")}
