"""Validation limits that ride on a contract's types, enforced and documented from one object.

    name: Annotated[str, Limits(max_length=200)]

`shims/wire.py` enforces them when it decodes a value; `shims/openapi.py` writes them into
the OpenAPI document as JSON Schema keywords, so the document promises exactly what the
server checks. `shims/fields.py` gives the limits of its own parsers (`fields.text_limits`
and friends), for contract types whose values those parsers check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shims.errors import ValidationError


@dataclass(frozen=True)
class Limits:
    """JSON Schema's validation keywords, for `typing.Annotated`. `pattern` is searched, not
    matched, as JSON Schema does (anchor it with ^...$); `format` only documents (int64,
    email)."""

    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    format: str | None = None

    def check(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            self._check_text(value, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_number(value, path)
        return value

    def _check_text(self, value: str, path: str) -> None:
        if self.min_length is not None and len(value) < self.min_length:
            raise ValidationError(f"{path} must be at least {self.min_length} characters",
                                  field=path)
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(f"{path} must be at most {self.max_length} characters",
                                  field=path)
        if self.pattern is not None and not re.search(self.pattern, value):
            raise ValidationError(f"{path} must match {self.pattern}", field=path)

    def _check_number(self, value: float, path: str) -> None:
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"{path} must be at least {self.minimum:g}", field=path)
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(f"{path} must be at most {self.maximum:g}", field=path)

    def schema(self) -> dict[str, Any]:
        """The JSON Schema keywords these limits are."""
        names = {"min_length": "minLength", "max_length": "maxLength", "minimum": "minimum",
                 "maximum": "maximum", "pattern": "pattern", "format": "format"}
        return {keyword: getattr(self, name) for name, keyword in names.items()
                if getattr(self, name) is not None}
