"""Contract values to JSON-ready data and back, driven by the contract's type hints.

`to_wire` flattens frozen dataclasses, dates and sequences into JSON types (date-times as
RFC 3339 in UTC with the offset written out; naive ones are taken as UTC).
`from_wire` rebuilds them from a type annotation and refuses anything that does
not fit with a `ValidationError` naming the path (`run.distance`, `[2].id`),
so a service never trusts its callers and a client never trusts its service.
A dataclass may define `from_wire(mapping)` to validate with its own rules.

Limits ride on the type: `Annotated[str, Limits(max_length=200)]` is enforced here and
written into the OpenAPI document (shims/openapi.py) from the same object, so the
document and the server agree. A dataclass with its own `from_wire` annotates its fields
with the limits its rules enforce, for the document's sake.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from shims import fields
from shims.errors import ValidationError
from shims.limits import Limits


def limits_of(annotation: Any) -> tuple[Any, list[Limits]]:
    """The type under `Annotated[...]` and the Limits on it (none for a plain type)."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation, []
    base, *extras = typing.get_args(annotation)
    return base, [extra for extra in extras if isinstance(extra, Limits)]


def hints(cls_or_function: Any, **kwargs: Any) -> dict[str, Any]:
    """Type hints with their `Annotated` limits kept (get_type_hints drops them)."""
    return typing.get_type_hints(cls_or_function, include_extras=True, **kwargs)


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}  # per class: its dataclass fields, or None


def _field_names(cls: type) -> tuple[str, ...] | None:
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = tuple(f.name for f in dataclasses.fields(cls)) \
            if dataclasses.is_dataclass(cls) else None
        _FIELD_NAMES[cls] = names
        return names


def to_wire(value: Any) -> Any:
    # Scalars first, by exact type, and each class's fields looked up once: a 10-run answer
    # is ~120 values, and the generic checks were ~100 µs of a service call. A dataclass's
    # or a list's scalar items are kept without a call of their own (~50 µs more).
    cls = type(value)
    if cls in _JSON_SCALARS:
        return value
    names = _field_names(cls)
    if names is not None:
        wire = {}
        for name in names:
            item = getattr(value, name)
            wire[name] = item if type(item) in _JSON_SCALARS else to_wire(item)
        return wire
    if isinstance(value, (list, tuple)):
        return [item if type(item) in _JSON_SCALARS else to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: item if type(item) in _JSON_SCALARS else to_wire(item)
                for key, item in value.items()}
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def rfc3339(value: dt.datetime) -> str:
    """RFC 3339 with its offset, always UTC: contracts hold naive UTC date-times, and a
    reader must not have to guess the zone (`2026-05-17T07:30:00+00:00`)."""
    aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return aware.isoformat()


def checked(annotation: Any, value: Any, path: str) -> Any:
    """`value` exactly as a service would receive it: an input built in code rather than by
    `parse` is normalised and refused the same way on the local side as on the remote one."""
    return from_wire(annotation, to_wire(value), path)


def from_wire(annotation: Any, value: Any, path: str = "value") -> Any:
    if annotation is Any:
        return value
    if typing.get_origin(annotation) is Annotated:
        base, limits = limits_of(annotation)
        decoded = from_wire(base, value, path)
        for limit in limits:  # text rules hold for the text sent (a date's too)
            limit.check(value if isinstance(value, str) else decoded, path)
        return decoded
    if annotation is None or annotation is type(None):
        if value is not None:
            raise ValidationError(f"{path} must be null", field=path)
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(annotation), value, path)
    if origin in (list, tuple):
        return _sequence(origin, typing.get_args(annotation), value, path)
    if origin is dict:
        return _mapping(typing.get_args(annotation), value, path)
    if dataclasses.is_dataclass(annotation):
        return _dataclass(annotation, value, path)
    decode = _SCALARS.get(annotation)
    if decode is None:
        raise TypeError(f"no wire format for {annotation!r} at {path}")
    return decode(value, path)


def _union(options: tuple, value: Any, path: str) -> Any:
    if value is None and type(None) in options:
        return None
    concrete = [option for option in options if option is not type(None)]
    if len(concrete) != 1:
        raise TypeError(f"only Optional[X] unions are supported on the wire, at {path}")
    return from_wire(concrete[0], value, path)


def _sequence(origin: type, args: tuple, value: Any, path: str) -> Any:
    if not isinstance(value, list):
        raise ValidationError(f"{path} must be a list", field=path)
    item_type = args[0] if args else Any
    items = [from_wire(item_type, item, f"{path}[{i}]") for i, item in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _mapping(args: tuple, value: Any, path: str) -> dict:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{path} must be an object", field=path)
    value_type = args[1] if len(args) == 2 else Any
    return {str(key): from_wire(value_type, item, f"{path}.{key}") for key, item in value.items()}


def _dataclass(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{path} must be an object", field=path)
    custom = getattr(cls, "from_wire", None)
    if custom is None:
        return cls(**_fields(cls, value, path))
    try:
        built = custom(value)
    except ValidationError as exc:  # its own rules name the field; the path places it
        exc.place_under(path)
        raise
    _fields(cls, value, path)  # and the typed, limited fields, as strictly as documented
    return built


@functools.cache
def _decoding(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """A dataclass's field types and fields, worked out once per class: `get_type_hints`
    evaluates every annotation anew on each call (758 µs of a 10-run answer's decoding,
    issue 12), and a class's hints never change once it is defined."""
    return hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _fields(cls: type, value: Mapping, path: str) -> dict[str, Any]:
    types_of, fields = _decoding(cls)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValidationError(f"unknown field(s) in {path}: {', '.join(unknown)}",
                              field=f"{path}.{unknown[0]}")
    decoded = {}
    for name, field in fields.items():
        if name in value:
            decoded[name] = from_wire(types_of[name], value[name], f"{path}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ValidationError(f"{path}.{name} is required", field=f"{path}.{name}")
    return decoded


def _int(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():  # JSON Schema's integer takes 2.0
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{path} must be an integer", field=path)
    return value


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{path} must be a number", field=path)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{path} must be a finite number", field=path)
    return number


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{path} must be a string", field=path)
    return fields.require_unicode(value, path)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{path} must be true or false", field=path)
    return value


def _datetime(value: Any, path: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(_str(value, path).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{path} must be an ISO 8601 date-time", field=path) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:30-05:00 is past year 9999 in UTC
            raise ValidationError(f"{path} is out of range", field=path) from None
    return parsed


def _date(value: Any, path: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_str(value, path))
    except ValueError:
        raise ValidationError(f"{path} must be an ISO 8601 date", field=path) from None


_SCALARS = {int: _int, float: _float, str: _str, bool: _bool, dt.datetime: _datetime,
            dt.date: _date}
