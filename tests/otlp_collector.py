"""A tiny OTLP/HTTP trace collector for the tests: `POST /v1/traces`, decoded with
opentelemetry-proto into the spans a test can look at.

It runs as a gevent server in the test's own process (the tests patch gevent first), on a
free loopback port; it serves while the test waits (`eventually`) or does I/O.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

from gevent.pywsgi import WSGIServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name: which process sent it
    name: str
    trace_id: str  # hex, as log lines and traceparent write them
    span_id: str
    parent_span_id: str  # "" for a root
    kind: int
    attributes: dict
    events: tuple[str, ...]


class Collector:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._server = WSGIServer(("127.0.0.1", 0), self._app, log=None, error_log=None)

    def __enter__(self) -> Collector:
        self._server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop(timeout=2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    def _app(self, environ, start_response):
        if environ["PATH_INFO"] != TRACES_PATH or environ["REQUEST_METHOD"] != "POST":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only POST /v1/traces"]
        body = _inflated(environ["wsgi.input"].read(), environ.get("HTTP_CONTENT_ENCODING"))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.requests += 1
        self.spans.extend(_spans(request))
        start_response("200 OK", [("Content-Type", "application/x-protobuf")])
        return [ExportTraceServiceResponse().SerializeToString()]


def _inflated(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(ReceivedSpan(
                    service=resource.get("service.name", ""), name=span.name,
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                    attributes=_attributes(span.attributes),
                    events=tuple(event.name for event in span.events)))
    return found


def _attributes(pairs) -> dict:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        value = getattr(pair.value, kind) if kind else None
        if kind == "array_value":
            value = [getattr(item, item.WhichOneof("value")) for item in value.values]
        values[pair.key] = value
    return values
