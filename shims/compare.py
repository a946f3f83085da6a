"""Compare two answers in their wire form, ignoring fields that are allowed to differ."""

from __future__ import annotations

import math
from typing import Any

MAX_DIFFERENCES = 20


def differences(primary: Any, shadow: Any, ignore: frozenset[str] = frozenset(),
                path: str = "") -> list[str]:
    """Paths where the two values differ; a field named in `ignore` is skipped at any depth."""
    found: list[str] = []
    _walk(primary, shadow, ignore, path or "$", found)
    return found


def _walk(a: Any, b: Any, ignore: frozenset[str], path: str, found: list[str]) -> None:
    if len(found) >= MAX_DIFFERENCES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in ignore:
                continue
            if key not in a or key not in b:
                found.append(f"{path}.{key}")
            else:
                _walk(a[key], b[key], ignore, f"{path}.{key}", found)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{path}.length")
        for index, (left, right) in enumerate(zip(a, b, strict=False)):
            _walk(left, right, ignore, f"{path}[{index}]", found)
    elif _is_number(a) and _is_number(b):
        if not _same_number(a, b):
            found.append(path)
    elif a != b or type(a) is not type(b):
        found.append(path)


def _same_number(a: int | float, b: int | float) -> bool:
    """Integers (ids, counts) exactly; floats within rounding noise, never NaN or inf
    against a finite number."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
