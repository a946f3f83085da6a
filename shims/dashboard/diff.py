"""A recorded mismatch as a side-by-side table: each leaf of either answer by its path
(the same `$.a.b[0]` paths shims/compare.py reports), the primary's value beside the
shadow's, the rows under a differing path marked."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_ROWS = 200  # a huge answer is cut: the differing rows come first
MISSING = "(absent)"


@dataclass(frozen=True)
class DiffRow:
    path: str
    primary: str
    shadow: str
    differs: bool


def side_by_side(primary: Any, shadow: Any, differences: Iterable[str]) -> list[DiffRow]:
    differing = tuple(differences)
    left, right = dict(_leaves(primary, "$")), dict(_leaves(shadow, "$"))
    paths = list(left) + [path for path in right if path not in left]
    rows = [DiffRow(path, left.get(path, MISSING), right.get(path, MISSING),
                    _under(path, differing) or left.get(path) != right.get(path))
            for path in paths]
    rows.sort(key=lambda row: not row.differs)  # stable: differing rows first, in order
    return rows[:MAX_ROWS]


def _under(path: str, differing: tuple[str, ...]) -> bool:
    """`$.a.length` marks every item of `$.a`; `$.a` marks `$.a.b`."""
    for found in differing:
        base = found.removesuffix(".length")
        if path in (found, base) or path.startswith((base + ".", base + "[")):
            return True
    return False


def _leaves(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, json.dumps(value, default=str)
