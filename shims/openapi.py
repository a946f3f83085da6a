"""An OpenAPI 3.1 document generated from contract specs, so it cannot drift from the code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Iterable
from typing import Any

from shims import deadline, idempotency
from shims.contract import ContractSpec, MethodSpec
from shims.remote import rpc_path
from shims.wire import hints, limits_of

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                   "field": {"type": "string"},
                   # invalid: every problem found, the first being `field` and `message`
                   "errors": {"type": "array", "items": {
                       "type": "object", "required": ["message"],
                       "properties": {"field": {"type": "string"},
                                      "message": {"type": "string"}}}}},
}
DEADLINE_HEADER = {
    "name": deadline.HEADER, "in": "header", "required": False,
    "schema": {"type": "integer", "minimum": 0, "maximum": deadline.MAX_HEADER_MS},
    "description": "milliseconds the caller will still wait; the service gives up on its own "
                   "calls by then (it may only shorten the service's own deadline)"}
KEY_HEADER = {
    "name": idempotency.HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "pattern": f"^{idempotency.KEY_PATTERN}$"},
    "description": "names this write: a repeat with the same key and arguments answers the "
                   "first outcome without applying it again; the same key with other arguments "
                   "is refused (422 idempotency_key_reused)"}
_SCALARS = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
            bool: {"type": "boolean"}, dt.datetime: {"type": "string", "format": "date-time"},
            dt.date: {"type": "string", "format": "date"}, type(None): {"type": "null"}}


def openapi_document(title: str, version: str, specs: Iterable[ContractSpec],
                     description: str = "") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths = {}
    for spec in specs:
        for method in spec.methods.values():
            paths[rpc_path(method)] = {"post": _operation(method, components)}
    paths["/healthz"] = {"get": {"summary": "liveness and database check", "responses": {
        "200": {"description": "healthy"}, "503": {"description": "failing"}}}}
    return {"openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": description},
            "paths": paths, "components": {"schemas": components}}


def _operation(method: MethodSpec, components: dict[str, Any]) -> dict[str, Any]:
    args = {"type": "object", "additionalProperties": False,
            "properties": {p.name: schema_for(p.annotation, components) for p in method.params},
            "required": [p.name for p in method.params if p.required]}
    error = {"description": "contract error", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "operationId": f"{method.contract}_{method.name}",
        "summary": method.doc.split("\n")[0] if method.doc else method.qualified_name,
        "tags": [method.contract],
        "x-turnout-kind": method.kind,
        "x-turnout-cacheable": method.cacheable,
        "parameters": [DEADLINE_HEADER] if method.is_read else [KEY_HEADER, DEADLINE_HEADER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["args"], "properties": {"args": args}}}}},
        "responses": {
            "200": {"description": "the result", "content": {"application/json": {"schema": {
                "type": "object", "required": ["result"],
                "properties": {"result": schema_for(method.returns, components)}}}}},
            "4XX": error, "5XX": error},
    }


def schema_for(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    if annotation is Any:
        return {}
    if annotation is None:
        return {"type": "null"}
    base, limits = limits_of(annotation)
    if limits:  # the very limits from_wire enforces
        schema = schema_for(base, components)
        for limit in limits:
            schema.update(limit.schema())
        return schema
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_for(arg, components) for arg in typing.get_args(annotation)]}
    if origin in (list, tuple):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        return {"type": "array", "items": schema_for(args[0], components) if args else {}}
    if origin is dict:
        args = typing.get_args(annotation)
        return {"type": "object",
                "additionalProperties": schema_for(args[1], components) if args else {}}
    if dataclasses.is_dataclass(annotation):
        return _component(annotation, components)
    return dict(_SCALARS[annotation])


def _component(cls: type, components: dict[str, Any]) -> dict[str, Any]:
    name = cls.__name__
    if name not in components:
        components[name] = {}  # placeholder first: a dataclass may refer to itself
        types_of = hints(cls)
        fields = dataclasses.fields(cls)
        components[name] = {
            "type": "object", "additionalProperties": False,
            "properties": {f.name: schema_for(types_of[f.name], components) for f in fields},
            "required": [f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING],
        }
    return {"$ref": f"#/components/schemas/{name}"}
