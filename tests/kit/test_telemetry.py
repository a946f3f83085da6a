"""Where spans go (shims/telemetry.py): nowhere unless the OTEL_* variables say so, over
OTLP/HTTP when they do, and a process's provider is the team's own if it set one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otlp_collector import Collector
from shims import telemetry
from shims.settings import ConfigError
from support import ROOT, eventually

OTEL_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
                  "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                  "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_BSP_SCHEDULE_DELAY")


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch):
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def sampled_parent() -> trace.Span:
    return NonRecordingSpan(SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
                                        span_id=0x00F067AA0BA902B7, is_remote=True,
                                        trace_flags=TraceFlags(TraceFlags.SAMPLED)))


def test_without_an_exporter_new_traces_get_ids_but_are_not_recorded():
    tracer = telemetry.build_provider("monolith").get_tracer("test")
    span = tracer.start_span("request")
    assert span.get_span_context().is_valid  # log lines and the next hop still get ids
    assert not span.is_recording()


def test_without_an_exporter_a_sampled_caller_is_still_honoured():
    """So the next hop, which may export, records the trace too."""
    tracer = telemetry.build_provider("monolith").get_tracer("test")
    span = tracer.start_span("request", context=trace.set_span_in_context(sampled_parent()))
    assert span.is_recording() and span.get_span_context().trace_flags.sampled


def test_otlp_export_sends_the_spans_to_the_collector_named_by_the_environment(monkeypatch):
    with Collector() as collector:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        provider = telemetry.build_provider("reports")
        try:
            span = provider.get_tracer("test").start_span("GET /reports")
            span.end()
            # The batch processor's thread is a greenlet here, its export cooperative:
            # a flush that blocked the hub would never reach this in-process collector.
            assert provider.force_flush(5_000)
            eventually(lambda: collector.spans, "the span reached the collector", 5)
        finally:
            provider.shutdown()
    [received] = collector.spans
    assert (received.service, received.name) == ("reports", "GET /reports")
    assert received.trace_id == format(span.get_span_context().trace_id, "032x")


def test_otel_service_name_replaces_the_apps_name(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "runnerly-eu")
    provider = telemetry.build_provider("monolith")
    assert provider.resource.attributes["service.name"] == "runnerly-eu"


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("OTEL_TRACES_EXPORTER", "jaeger", "jaeger is not one Turnout ships"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf only"),
])
def test_an_exporter_turnout_does_not_ship_is_refused_at_start(monkeypatch, variable, value,
                                                                says):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=says):
        telemetry.build_provider("monolith")


def test_the_sdk_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.build_provider("monolith") is None


def test_configure_keeps_a_provider_the_app_set_itself():
    own = trace.get_tracer_provider()  # the tests' own (tests/span_recorder.py)
    assert not isinstance(own, trace.ProxyTracerProvider)
    assert telemetry.configure("monolith") is None
    assert trace.get_tracer_provider() is own


def test_configure_sets_the_processs_provider_and_importing_the_kit_starts_nothing():
    """In a fresh interpreter, as a worker starts: importing sets no provider and starts no
    thread; configure sets one named after the app."""
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import json, threading\n"
        "from opentelemetry import trace\n"
        "import shims.telemetry, shims.traced_requests, shims.logs\n"
        "unset = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)\n"
        "threads = threading.active_count()\n"
        "provider = shims.telemetry.configure('dataservice')\n"
        "print(json.dumps([unset, threads, trace.get_tracer_provider() is provider,\n"
        "                  provider.resource.attributes['service.name']]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, 1, True, "dataservice"]


def test_a_fork_to_exec_runs_none_of_the_parents_greenlets_in_the_child():
    """A worker that runs a subprocess while it serves: the SDK's fork hooks (resource
    detection, the export thread's restart) wait on a greenlet in the child, and gevent's hub
    then runs the parent's greenlets there, on the sockets both share. With the provider and
    the batch processor `build_provider` makes, the child runs none of them."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the `otlp` extra")
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import os, subprocess, gevent\n"
        "import shims.telemetry\n"
        "shims.telemetry.configure('monolith')\n"
        "parent = os.getpid()\n"
        "def serving():\n"
        "    while True:\n"
        "        if os.getpid() != parent:\n"
        "            os.write(1, b'ran in the child\\n')\n"
        "        gevent.sleep(0.001)\n"
        "gevent.spawn(serving)\n"
        "gevent.sleep(0.01)\n"
        "for _ in range(5):\n"
        "    subprocess.run(['true'], check=True)\n"
        "print('forked 5 times')\n")
    exporting = {"OTEL_TRACES_EXPORTER": "otlp",  # a batch processor, which nothing reaches
                 "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **exporting})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["forked 5 times"]
