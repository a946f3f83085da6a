"""Parse untrusted mappings (JSON bodies, HTML forms, query strings) into typed values.

Every parser takes the raw mapping and a field name and either returns a clean
Python value or raises `ValidationError` naming the field and what was wrong.
HTML forms send everything as strings and JSON sends typed values, so each
parser accepts both spellings ("42" and 42) but never guesses beyond that:
booleans are not numbers, and NaN or infinity are not distances.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shims.errors import ValidationError
from shims.limits import Limits

_MISSING = object()
T = TypeVar("T")
FIRST_YEAR, LAST_YEAR = 1970, 2100
# What str.strip() removes, spelled out: regex engines disagree on `\s` (Python's takes
# \x1c-\x1f, JavaScript's and Hypothesis's generators do not), and the OpenAPI document
# must mean to every reader what it means to this server.
SPACE = r"\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EMAIL_PATTERN = re.compile(rf"^[^@{SPACE}]+@[^@{SPACE}]+\.[^@{SPACE}]+$")
MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH = 8, 200
_YEAR_PREFIX = r"^(19[7-9][0-9]|20[0-9][0-9]|2100)-"  # FIRST_YEAR..LAST_YEAR, as text


# The limits each parser below enforces, as `Limits` for contract types (shims/limits.py):
# what the OpenAPI document promises is what these parsers accept.
def text_limits(max_length: int = 200, *, required: bool = True) -> Limits:
    """`text`: a required one is not blank. On the wire the length counts as sent (the
    stricter reading, so the document's promise holds); a form's is counted stripped."""
    return Limits(max_length=max_length, pattern=f"[^{SPACE}]" if required else None)


EMAIL_LIMITS = Limits(max_length=MAX_EMAIL_LENGTH,  # surrounding space is stripped
                      pattern=f"^[{SPACE}]*{EMAIL_PATTERN.pattern[1:-1]}[{SPACE}]*$")
PASSWORD_LIMITS = Limits(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
DATE_LIMITS = Limits(pattern=_YEAR_PREFIX)
TIMESTAMP_LIMITS = Limits(pattern=_YEAR_PREFIX)
YEAR_LIMITS = Limits(minimum=FIRST_YEAR, maximum=LAST_YEAR)
MONTH_LIMITS = Limits(minimum=1, maximum=12)


def require_unicode(value: str, name: str) -> str:
    """Refuse text no encoder takes (a lone surrogate such as "\\ud800", which JSON escapes
    and Python strings allow): it would fail later, in a database driver, as a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{name} holds text that is not valid Unicode (a lone "
                              "surrogate such as \\ud800); send UTF-8 text", field=name) from None
    return value


def require_mapping(data: Any, what: str = "body") -> Mapping:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be a JSON object")
    return data


def _raw(data: Mapping, name: str, required: bool) -> Any:
    value = data.get(name, _MISSING)
    if value is _MISSING or value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return _MISSING
    return value


def text(data: Mapping, name: str, *, required: bool = True, max_length: int = 200,
         default: str | None = None) -> str | None:
    value = _raw(data, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    value = require_unicode(value, name).strip()
    if len(value) > max_length:
        raise ValidationError(f"{name} must be at most {max_length} characters", field=name)
    return value


def email(data: Mapping, name: str = "email", *, required: bool = True) -> str | None:
    value = text(data, name, required=required, max_length=MAX_EMAIL_LENGTH)
    if value is None:
        return None
    if not EMAIL_PATTERN.match(value):
        raise ValidationError(f"{name} must be an email address like runner@example.com",
                              field=name)
    return value.lower()


def password(data: Mapping, name: str = "password", *,
             min_length: int = MIN_PASSWORD_LENGTH) -> str:
    """Taken exactly as typed: spaces are part of a password, so nothing is stripped."""
    value = data.get(name)
    if value is None or value == "":
        raise ValidationError(f"{name} is required", field=name)
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    require_unicode(value, name)
    if len(value) < min_length:
        raise ValidationError(f"{name} must be at least {min_length} characters", field=name)
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"{name} must be at most {MAX_PASSWORD_LENGTH} characters",
                              field=name)
    return value


def number(data: Mapping, name: str, *, required: bool = True, minimum: float | None = None,
           maximum: float | None = None, integer: bool = False, default: Any = None) -> Any:
    value = _raw(data, name, required)
    if value is _MISSING:
        return default
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be {kind}", field=name)
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ValidationError(f"{name} must be {kind}, got {value[:40]!r}",
                                  field=name) from None
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ValidationError(f"{name} must be {kind}", field=name)
        value = int(value)
    if not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be {kind}", field=name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number", field=name)
    if minimum is not None and value < minimum:
        raise ValidationError(f"{name} must be at least {minimum:g}", field=name)
    if maximum is not None and value > maximum:
        raise ValidationError(f"{name} must be at most {maximum:g}", field=name)
    return value if integer else float(value)


def integer(data: Mapping, name: str, **kwargs: Any) -> Any:
    return number(data, name, integer=True, **kwargs)


def boolean(data: Mapping, name: str, *, default: bool = False) -> bool:
    value = data.get(name, _MISSING)
    if value is _MISSING or value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "on", "yes", "1"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "off", "no", "0"):
        return False
    raise ValidationError(f"{name} must be true or false", field=name)


def date(data: Mapping, name: str, *, required: bool = True) -> dt.date | None:
    value = _raw(data, name, required)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a date like 2026-05-17", field=name)
    try:
        parsed = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{name} must be a date like 2026-05-17", field=name) from None
    return _within_years(parsed, name, "a date")


def timestamp(data: Mapping, name: str, *, required: bool = True) -> dt.datetime | None:
    """An ISO 8601 date-time; naive values are taken as UTC, aware ones converted to UTC."""
    value = _raw(data, name, required)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a date-time like 2026-05-17T07:30:00", field=name)
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a date-time like 2026-05-17T07:30:00",
                              field=name) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:30-05:00 is past year 9999 in UTC
            parsed = dt.datetime.max
    return _within_years(parsed, name, "a date-time")


def _within_years(value: Any, name: str, what: str) -> Any:
    """Dates outside the years every page can show are refused where they enter."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"{name} must be {what} between the years {FIRST_YEAR} and "
                              f"{LAST_YEAR}", field=name)
    return value


def month(year_value: Any, month_value: Any) -> tuple[int, int]:
    """A (year, month) pair from query-string or JSON values."""
    data = {"year": year_value, "month": month_value}
    year = integer(data, "year", minimum=FIRST_YEAR, maximum=LAST_YEAR)
    month_number = integer(data, "month", minimum=1, maximum=12)
    return year, month_number


def only_known(data: Mapping, allowed: set[str], what: str = "body") -> None:
    """Refuse fields the contract does not know, so typos never silently do nothing."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"unknown field(s) in {what}: {', '.join(unknown)}", field=unknown[0])


class Problems:
    """Parses fields one by one, keeping each refusal instead of stopping at the first, so
    one answer names every field that is missing or wrong:

        problems = Problems()
        name = problems.parse(text, data, "name")
        distance = problems.parse(number, data, "distance")
        problems.raise_any()  # a ValidationError naming both, if both were refused
    """

    def __init__(self) -> None:
        self._found: list[ValidationError] = []

    def parse(self, parser: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """The parser's value, or None once its refusal is noted."""
        try:
            return parser(*args, **kwargs)
        except ValidationError as error:
            self._found.extend(error.problems)
            return None

    def raise_any(self) -> None:
        if self._found:
            raise ValidationError.combine(self._found)
