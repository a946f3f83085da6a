"""Regexes for the /api/ OpenAPI document that accept exactly what shims/fields.py accepts.

JSON Schema has no "length after stripping" and no minimum for a date, so the document says
those with patterns. They must mean the same in the server's Python `re` and in a client's
ECMA-262 engine, which disagree on `\\s` (Python counts U+001C-U+001F and U+0085 as
space, ECMA counts U+FEFF): so whitespace is spelled out as the characters `str.strip()`
removes, and everything else is written in the syntax both share.
"""

from __future__ import annotations

import calendar
import functools

from shims import fields

ANY = r"[\s\S]"  # every character, in both engines
BMP = 0x10000


@functools.cache
def _spaces() -> str:
    """The characters str.strip() removes, as \\uXXXX escapes both engines read. All of
    them are in the Basic Multilingual Plane (a test scans the rest), which is 17 times
    quicker to scan at import."""
    return "".join(f"\\u{ord(c):04x}" for c in map(chr, range(BMP)) if c.isspace())


def space() -> str:
    return f"[{_spaces()}]"


def not_space() -> str:
    return f"[^{_spaces()}]"


def stripped_text(max_length: int, *, required: bool) -> str:
    """fields.text: 1 (or, when optional, 0) to max_length characters once stripped."""
    inner = f"{not_space()}({ANY}{{0,{max_length - 2}}}{not_space()})?"
    body = inner if required else f"({inner})?"
    return f"^{space()}*{body}{space()}*$"


def email() -> str:
    """fields.EMAIL_PATTERN with its `\\s` spelled out."""
    return fields.EMAIL_PATTERN.pattern.replace(r"\s", _spaces())


def _years(first: int, last: int, *, leap: bool = False) -> str:
    return "(" + "|".join(str(year) for year in range(first, last + 1)
                          if not leap or calendar.isleap(year)) + ")"


def _date(first: int, last: int) -> str:
    """A real calendar date between the years: 2026-02-30 and 2023-02-29 do not match."""
    days = ("((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
            "|02-(0[1-9]|1[0-9]|2[0-8]))")
    return f"({_years(first, last)}-{days}|{_years(first, last, leap=True)}-02-29)"


def date() -> str:
    """fields.date: YYYY-MM-DD within fields.FIRST_YEAR..LAST_YEAR."""
    return f"^{_date(fields.FIRST_YEAR, fields.LAST_YEAR)}$"


def timestamp() -> str:
    """fields.timestamp, as the document promises it: a date, `T`, hours and minutes,
    optional seconds and fraction, optional `Z` or offset (without one: UTC). The
    parser accepts more ISO 8601 spellings; these are the ones clients should send."""
    hour, minute = "([01][0-9]|2[0-3])", "[0-5][0-9]"
    time = f"{hour}:{minute}(:{minute}(\\.[0-9]{{1,6}})?)?"
    offset = f"(Z|[+-]{hour}:{minute})"
    return f"^{_date(fields.FIRST_YEAR, fields.LAST_YEAR)}T{time}{offset}?$"
