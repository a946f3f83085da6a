"""Structured log lines: one JSON object per line, so operators can grep, join and ship them.

`event(logger, name, level, **fields)` is how the kit reports what happened (a breaker
opening, a write whose mirror push was deferred). In a server process (`configure`) every
record, the kit's events and anything else logged through `logging` by the app or its
libraries, becomes one line rendered by structlog::

    {"timestamp": "2026-11-30T09:15:02.311Z", "level": "warning", "logger": "turnout.router",
     "pid": 4242, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
     "event": "mirror_write_deferred", "feature": "runs", "target": "remote", ...}

`trace_id` and `span_id` are there when the line is written inside a trace (a request, or
a remote call it makes: shims/telemetry.py). An event's fields follow `event` in name order;
a record that is not an event has its message as `event`, and a traceback as `exception`.
json.dumps' default separators, `"event": "<name>"`, let a grep find an event.

The record's own message stays the event's JSON too, so a handler of the app's own (and
pytest's caplog) sees the same object without the line's context.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import structlog

from shims import telemetry
from shims.wire import to_wire

EVENT_FIELDS = "turnout_event"  # the LogRecord attribute that carries an event's fields
LINE_KEYS = ("timestamp", "level", "logger", "pid", "trace_id", "span_id", "event")
_HANDLER_MARK = "turnout_json_lines"


def event(logger: logging.Logger | logging.LoggerAdapter, name: str, level: int = logging.INFO,
          **fields: Any) -> None:
    if logger.isEnabledFor(level):
        wire = to_wire(fields)
        logger.log(level, json.dumps({"event": name, **wire}, default=str, sort_keys=True),
                   extra={EVENT_FIELDS: (name, wire)})


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
    return structlog.stdlib.ProcessorFormatter(processors=[
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _with_context,
        structlog.processors.format_exc_info,
        _as_line,
        structlog.processors.JSONRenderer(default=str),
    ])


def _with_context(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The process id, the trace and span ids, and an event's own name and fields."""
    event_dict["pid"] = os.getpid()
    event_dict.update(telemetry.log_ids())
    record = event_dict.get("_record")
    name_and_fields = getattr(record, EVENT_FIELDS, None)
    if name_and_fields is not None:
        event_dict["event"], event_dict["fields"] = name_and_fields
    return event_dict


def _as_line(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The line's keys in reading order, structlog's bookkeeping (`_record`...) dropped. A
    field named like one of the line's keys keeps its value under `<name>_`."""
    line = {key: event_dict[key] for key in LINE_KEYS if key in event_dict}
    for key, value in sorted(event_dict.pop("fields", {}).items()):
        line[key + "_" if key in LINE_KEYS else key] = value
    for key, value in event_dict.items():
        if key not in line and not key.startswith("_"):
            line[key] = value  # `exception`, or what another processor added
    return line
