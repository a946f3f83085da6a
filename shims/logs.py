"""Structured log lines: one JSON object per event, so operators can grep and ship them."""

from __future__ import annotations

import json
import logging
from typing import Any

from shims.wire import to_wire


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": name, **to_wire(fields)}, default=str,
                                     sort_keys=True))


def configure(level: int = logging.INFO) -> None:
    """For server processes (the wsgi entry points): Turnout's events go to stderr, which
    circus writes to the process's log file. Tests leave logging to pytest."""
    logger = logging.getLogger("turnout")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] "
                                               "%(name)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
