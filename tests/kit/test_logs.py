"""Log lines (shims/logs.py): one JSON object per line, the kit's events and every other
record alike, with the trace and span ids of the request that wrote it."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re

import pytest

from shims import logs, telemetry


@pytest.fixture
def written():
    """A logger of its own, rendered by the server processes' formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    logger = logging.getLogger("turnout.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_an_event_is_one_json_line_with_its_fields_after_the_lines_own_keys(written):
    logger, stream = written
    logs.event(logger, "mirror_write_deferred", logging.WARNING, target="remote",
               feature="runs", at=dt.date(2026, 11, 30))
    [line] = lines_of(stream)
    assert '"event": "mirror_write_deferred"' in line  # how operators and tests grep for one
    record = json.loads(line)
    assert list(record) == ["timestamp", "level", "logger", "pid", "event", "at", "feature",
                            "target"]
    assert record["level"] == "warning" and record["logger"] == "turnout.test_logs"
    assert record["pid"] == os.getpid() and record["at"] == "2026-11-30"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", record["timestamp"])


def test_inside_a_trace_a_line_carries_its_trace_and_span_ids(written):
    logger, stream = written
    span = telemetry.TRACER.start_span("request")
    with telemetry.current_span(span):
        logs.event(logger, "inside")
    logs.event(logger, "outside")
    inside, outside = (json.loads(line) for line in lines_of(stream))
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside and "span_id" not in outside


def test_a_plain_record_is_a_line_too_with_its_traceback_in_it(written):
    logger, stream = written
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        logger.exception("unhandled error on %s %s", "GET", "/api/runs")
    [line] = lines_of(stream)
    record = json.loads(line)
    assert record["event"] == "unhandled error on GET /api/runs"
    assert record["level"] == "error"
    assert "RuntimeError: disk on fire" in record["exception"]


def test_a_field_named_like_a_key_of_the_line_keeps_its_value_under_another_name(written):
    logger, stream = written
    logs.event(logger, "odd", pid="not mine", timestamp="theirs")
    record = json.loads(lines_of(stream)[0])
    assert record["pid"] == os.getpid()
    assert (record["pid_"], record["timestamp_"]) == ("not mine", "theirs")


def test_the_records_own_message_stays_the_events_json(caplog):
    """For an app's own handlers (and pytest's caplog), which know nothing of the line's format."""
    caplog.set_level(logging.INFO, logger="turnout.test_logs")
    logs.event(logging.getLogger("turnout.test_logs"), "breaker_open", feature="runs")
    [record] = caplog.records
    assert json.loads(record.getMessage()) == {"event": "breaker_open", "feature": "runs"}


def test_configure_renders_every_logger_through_one_root_handler_once():
    root, turnout = logging.getLogger(), logging.getLogger("turnout")
    saved = (list(root.handlers), root.level, turnout.level)
    try:
        logs.configure()
        logs.configure()  # a second call (a test, a reloaded module) adds no second handler
        ours = [h for h in root.handlers if isinstance(h.formatter, type(logs.json_formatter()))]
        assert len(ours) == 1
        assert turnout.getEffectiveLevel() == logging.INFO
        assert logging.getLogger("monolith.app").getEffectiveLevel() == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        turnout.setLevel(saved[2])


def test_an_event_through_a_logger_adapter_carries_the_adapters_context_too(written):
    logger, stream = written
    logs.event(logging.LoggerAdapter(logger, {"worker": 3}), "breaker_open", feature="runs")
    record = json.loads(lines_of(stream)[0])
    assert (record["event"], record["feature"], record["worker"], record["logger"]) == \
        ("breaker_open", "runs", 3, "turnout.test_logs")
