"""Describe a contract: its methods, whether each reads or writes, and their types.

A contract is a `typing.Protocol` whose methods are marked `@read` or `@write`.
`describe()` turns it into a `ContractSpec` once, at wiring time; the remote
client, the service endpoints, the OpenAPI document and the router are all
driven by that one description, so they cannot drift apart.

Reads may be retried, shadowed and compared, and their answers kept by the client
(conditional reads, shims/http_cache.py) unless marked `@read(cacheable=False)`;
writes run on one side and are applied once: a remote write is resent only with its Idempotency-Key
(shims/idempotency.py), whose outcome the service keeps.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from shims import wire

Kind = Literal["read", "write"]
F = TypeVar("F", bound=Callable[..., Any])
ACTOR_PARAMETER = "user_id"  # the argument that names who is acting, for sticky canaries


def read(method: F | None = None, *, cacheable: bool = True) -> Any:
    """Mark a contract method as a read: no side effects, safe to retry and to shadow.

    `@read(cacheable=False)` for a read whose arguments or answer must not be kept (a
    password check): the client holds no copy of it, keyed by its arguments or otherwise,
    and the service tags it neither with an ETag nor as storable."""
    def mark(target: F) -> F:
        target.__turnout_kind__ = "read"  # type: ignore[attr-defined]
        target.__turnout_cacheable__ = cacheable  # type: ignore[attr-defined]
        return target

    return mark if method is None else mark(method)


def write(method: F) -> F:
    """Mark a contract method as a write: run once, on one authoritative side."""
    method.__turnout_kind__ = "write"  # type: ignore[attr-defined]
    return method


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    required: bool
    default: Any = None


@dataclass(frozen=True)
class MethodSpec:
    contract: str
    name: str
    kind: Kind
    params: tuple[Param, ...]
    returns: Any
    doc: str
    cacheable: bool = False  # a read whose answer a client may keep (writes never)

    @property
    def qualified_name(self) -> str:
        return f"{self.contract}.{self.name}"

    @property
    def is_read(self) -> bool:
        return self.kind == "read"

    @property
    def has_actor(self) -> bool:
        return any(p.name == ACTOR_PARAMETER for p in self.params)

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Positional and keyword arguments as one keyword mapping, defaults filled in."""
        names = [p.name for p in self.params]
        if len(args) > len(names):
            raise TypeError(f"{self.qualified_name}() takes {len(names)} arguments")
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{self.qualified_name}() got an unexpected argument {key!r}")
            if key in bound:
                raise TypeError(f"{self.qualified_name}() got {key!r} twice")
            bound[key] = value
        for param in self.params:
            if param.name not in bound:
                if param.required:
                    raise TypeError(f"{self.qualified_name}() is missing {param.name!r}")
                bound[param.name] = param.default
        return bound


@dataclass(frozen=True)
class ContractSpec:
    name: str
    protocol: type
    methods: dict[str, MethodSpec]

    def method(self, name: str) -> MethodSpec:
        return self.methods[name]


def describe(protocol: type, name: str) -> ContractSpec:
    """The spec of a Protocol whose public methods are all marked @read or @write."""
    hints_namespace = vars(inspect.getmodule(protocol))
    methods = {}
    for attribute, member in vars(protocol).items():
        if attribute.startswith("_") or not callable(member):
            continue
        kind = getattr(member, "__turnout_kind__", None)
        if kind is None:
            raise TypeError(f"{protocol.__name__}.{attribute} must be marked @read or @write")
        methods[attribute] = _method_spec(name, attribute, member, kind, hints_namespace)
    return ContractSpec(name=name, protocol=protocol, methods=methods)


def _method_spec(contract: str, name: str, member: Callable, kind: Kind,
                 namespace: dict[str, Any]) -> MethodSpec:
    hints = wire.hints(member, globalns=namespace)
    params = []
    for parameter in list(inspect.signature(member).parameters.values())[1:]:  # skip self
        required = parameter.default is inspect.Parameter.empty
        params.append(Param(name=parameter.name, annotation=hints[parameter.name],
                            required=required, default=None if required else parameter.default))
    return MethodSpec(contract=contract, name=name, kind=kind, params=tuple(params),
                      returns=hints.get("return", type(None)),
                      doc=inspect.getdoc(member) or "",
                      cacheable=kind == "read" and getattr(member, "__turnout_cacheable__", True))
