"""Small request/response helpers shared by every blueprint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify, request

from shims import fields, ids, json_input
from shims.errors import ValidationError
from shims.wire import to_wire


def json_body() -> Mapping[str, Any]:
    """The request's JSON object through the kit's one loader (size, depth, text), or a
    4xx naming what is wrong with the body."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationError("the request body is empty; send a JSON object")
    return fields.require_mapping(json_input.loads(raw), "the request body")


def form_data() -> dict[str, str]:
    """The posted HTML form as the contract's input parsers take it: Flask-WTF's
    `csrf_token` (already checked by then) is the page's business, not the contract's."""
    data = request.form.to_dict()
    data.pop("csrf_token", None)
    return data


def json_response(value: Any, status: int = 200) -> Response:
    """`value` in wire form, every id as a string of digits (docs/api.md, "Ids"): ids are
    63-bit, past what JavaScript's JSON.parse keeps exact."""
    response = jsonify(ids.ids_as_strings(to_wire(value), is_public_id))
    response.status_code = status
    return response


def is_public_id(key: str) -> bool:
    """The kit's rule (`id`, `*_id`) plus Runnerly's one id named otherwise."""
    return ids.is_id_key(key) or key == "created_by"


def no_content() -> Response:
    """A 204: no body, so no Content-Type either (Flask would add text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def requested_month(args: Mapping[str, Any]) -> tuple[int, int]:
    """`?year=&month=`, defaulting to the current month when both are absent."""
    today = dt.date.today()
    return fields.month(args.get("year", today.year), args.get("month", today.month))
