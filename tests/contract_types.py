"""What the wire and OpenAPI tests both walk: every dataclass a contract can carry."""

from __future__ import annotations

import dataclasses
import typing


def contract_dataclasses(specs) -> set[type]:
    """Every dataclass reachable from any method's arguments or result in `specs`."""
    found: set[type] = set()

    def walk(annotation):
        if typing.get_origin(annotation) is typing.Annotated:  # its Limits are no contract type
            walk(typing.get_args(annotation)[0])
            return
        for arg in typing.get_args(annotation):
            walk(arg)
        if dataclasses.is_dataclass(annotation) and annotation not in found:
            found.add(annotation)
            for hint in typing.get_type_hints(annotation).values():
                walk(hint)

    for spec in specs:
        for method in spec.methods.values():
            walk(method.returns)
            for param in method.params:
                walk(param.annotation)
    return found
