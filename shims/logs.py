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
