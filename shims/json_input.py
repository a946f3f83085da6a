"""The one loader of untrusted JSON bodies, used by every app the kit builds or wraps.

A body is refused with a 4xx naming what is wrong, never a 500 from deeper down:
- larger than the app's `MAX_CONTENT_LENGTH` (Werkzeug raises 413 while reading; the kit
  sets a default on every app, `ensure_body_limit`, and `too_large_message` names it);
- not JSON, or not UTF-8;
- nested deeper than `MAX_DEPTH` (the parser would recurse until a RecursionError, and
  every layer after it would too);
- holding text that cannot be encoded as UTF-8 (a lone surrogate such as "\\ud800", which
  JSON's escapes allow but no database driver or encoder takes): 400 naming the field path,
  e.g. `args.run.name`.
The parsed value is walked once, iteratively, for both the depth and the text.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from shims import fields
from shims.errors import ValidationError

MAX_DEPTH = 32  # objects and arrays inside one another; contracts need fewer than 8
DEFAULT_MAX_BYTES = 1024 * 1024  # for an app that sets no MAX_CONTENT_LENGTH of its own


def ensure_body_limit(app: Flask, default: int = DEFAULT_MAX_BYTES) -> None:
    """Every app gets a body size limit: Flask's own default is none at all."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = default


def too_large_message(limit: int | None) -> str:
    if limit is None:
        return "the request body is too large"
    return f"the request body is larger than this endpoint's limit of {limit} bytes"


def loads(raw: bytes | str, *, expected: str = "a JSON object", root: str = "",
          max_depth: int = MAX_DEPTH) -> Any:
    """`raw` parsed, or a ValidationError saying why not (and that `expected` is what to
    send); `root` prefixes the field paths named."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep(root, max_depth) from None
    except ValueError:  # bad syntax, and bad UTF-8 (UnicodeDecodeError is a ValueError)
        raise ValidationError(f"the request body is not valid JSON; send {expected}") from None
    check(value, root=root, max_depth=max_depth)
    return value


def check(value: Any, *, root: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting past `max_depth` and text that is not valid Unicode, naming where."""
    pending = [(value, root, 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            _encodable(item, path)
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise _too_deep(path or root, max_depth)
            pending.extend(_children(item, path, depth + 1))


def _children(container: dict | list, path: str, depth: int):
    if isinstance(container, list):
        return ((item, f"{path}[{index}]", depth) for index, item in enumerate(container))
    children = []
    for key, item in container.items():
        child = f"{path}.{_printable(key)}" if path else _printable(key)
        _encodable(key, child)
        children.append((item, child, depth))
    return children


def _encodable(text: str, path: str) -> None:
    fields.require_unicode(text, path or "body")


def _printable(key: str) -> str:
    """A key fit to name in an answer, even one holding a lone surrogate."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _too_deep(path: str, max_depth: int) -> ValidationError:
    return ValidationError(f"the request body nests objects and arrays deeper than "
                           f"{max_depth} levels", field=path or None)
