"""The test process's span provider: every trace sampled, as in an exporting process, and the
spans that end while a test listens (the `spans` fixture) kept for it to look at.

A process's provider can be set only once, and `shims.telemetry.configure` keeps one that
is already set (a team's own): tests/conftest.py installs this one before any test runs, so
a test that imports a wsgi module (which configures) cannot take its place.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from shims.telemetry import without_fork_hooks


class SpanRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.listening = False
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        if self.listening:
            self.spans.append(span)

    def named(self, name: str) -> ReadableSpan:
        """The one span of that name (fails the test if there are none or several)."""
        found = [span for span in self.spans if span.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}: " \
                                f"{sorted(span.name for span in self.spans)}"
        return found[0]


RECORDER = SpanRecorder()


def install() -> None:
    # Without the SDK's fork hooks, as the kit makes its own (shims/telemetry.py): the tests'
    # gevent subprocesses (circusctl) would otherwise run copies of the test's client
    # greenlets in the child, on the client's sockets, and a client would read another's
    # answer.
    with without_fork_hooks():
        provider = TracerProvider()
    provider.add_span_processor(RECORDER)
    trace.set_tracer_provider(provider)
