"""Structured log lines: one JSON object per line, so operators can grep, join and ship them.

`event(logger, name, level, **fields)` is how the kit reports what happened (a breaker
opening, a write whose mirror push was deferred). In a server process (`configure`) every
record, the kit's events and anything else logged through `logging` by the app or its
libraries, becomes one line::

    {"timestamp": "2026-11-30T09:15:02.311Z", "level": "warning", "logger": "turnout.router",
     "pid": 4242, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
     "event": "mirror_write_deferred", "feature": "runs", "target": "remote", ...}

`trace_id` and `span_id` are there when the line is written inside a trace (a request, or
a remote call it makes: shims/telemetry.py). An event's fields follow `event` in name order;
a record that is not an event has its message as `event`, and a traceback as `exception`.
json.dumps' default separators, `"event": "<name>"`, let a grep find an event.

The record's own message stays the event's JSON too, so a handler of the app's own (and
pytest's caplog) sees the same object without the line's context; it is encoded only when a
handler asks for it.

Written by hand on the standard `logging` module, not with structlog's ProcessorFormatter,
because every request writes a line (`request_served`, shims/traced_requests.py) in every
process it crosses: structlog's formatter copied each record and the event was encoded twice,
57 µs a line against 13 µs here (issue 12, B8/B10; `docs/benchmarks.md`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from typing import Any

from shims import telemetry
from shims.wire import to_wire

EVENT_FIELDS = "turnout_event"  # the LogRecord attribute that carries an event's fields
LINE_KEYS = ("timestamp", "level", "logger", "pid", "trace_id", "span_id", "event")
_HANDLER_MARK = "turnout_json_lines"


class EventMessage:
    """An event as a record's message: its JSON, made only if a handler reads it."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: dict[str, Any]):
        self.name, self.fields = name, fields

    def __str__(self) -> str:
        return json.dumps({"event": self.name, **self.fields}, default=str, sort_keys=True)


def event(logger: logging.Logger | logging.LoggerAdapter, name: str, level: int = logging.INFO,
          **fields: Any) -> None:
    exc_info: Any = None
    while isinstance(logger, logging.LoggerAdapter):
        # What the adapter adds, as Logger.log would see it: its context becomes fields (its
        # default `process` would replace the event's own `extra` with it), and its
        # `exc_info`, if it sets one, the line's traceback.
        _, kwargs = logger.process(None, {})
        fields = {**(kwargs.get("extra") or {}), **fields}
        exc_info = exc_info or kwargs.get("exc_info")
        logger = logger.logger
    if not logger.isEnabledFor(level):
        return
    wire = to_wire(fields)
    # Made and handled as Logger.log would, without its walk up the stack for the caller,
    # which would only ever name this function (7 µs of a line).
    logger.handle(logger.makeRecord(logger.name, level, __file__, 0, EventMessage(name, wire),
                                    (), _as_exc_info(exc_info), func="event",
                                    extra={EVENT_FIELDS: (name, wire)}))


def _as_exc_info(value: Any) -> Any:
    """`exc_info` as Logger.log takes it (an exception, True, or a tuple) made a tuple."""
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if value is True:
        return sys.exc_info()
    return value or None


def configure(level: int = logging.INFO) -> None:
    """For server processes (the wsgi entry points): every log record as a JSON line on
    stderr, which circus writes to the process's log file; Turnout's own from `level` up,
    the app's and its libraries' from WARNING. Tests leave logging to pytest. gunicorn's
    own loggers do not propagate here: its error and access lines stay as it writes them."""
    root = logging.getLogger()
    if not any(getattr(handler, _HANDLER_MARK, False) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(json_formatter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("turnout").setLevel(level)


def json_formatter() -> logging.Formatter:
    return JsonLines()


class JsonLines(logging.Formatter):
    """A record as one JSON line: the line's own keys in reading order, then an event's
    fields in name order (a field named like a line key keeps its value under `<name>_`),
    then `exception` with the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"timestamp": _utc_timestamp(record.created),
                                "level": record.levelname.lower(), "logger": record.name,
                                "pid": record.process}
        line.update(telemetry.log_ids())
        name_and_fields = getattr(record, EVENT_FIELDS, None)
        if name_and_fields is None:
            line["event"], fields = record.getMessage(), {}
        else:
            line["event"], fields = name_and_fields
        for key in sorted(fields):
            line[key + "_" if key in LINE_KEYS else key] = fields[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def _utc_timestamp(created: float) -> str:
    """RFC 3339 in UTC with microseconds and a `Z`, as log shippers parse it. The text up to
    the second is made once a second (strftime was a fifth of a line's cost)."""
    second = int(created)
    prefix = _second_prefix(second)
    return f"{prefix}.{int((created - second) * 1_000_000):06d}Z"


@functools.lru_cache(maxsize=4)
def _second_prefix(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
