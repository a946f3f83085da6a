"""An OpenAPI 3.1 document of the public JSON API (/api/), served at /api/openapi.json.

Built, not written by hand: response schemas come from the contract record dataclasses
through shims/openapi.py's `schema_for` (the same type hints `to_wire` serialises), the
numeric limits from the constants the parsers use, and text and date patterns from
monolith/api_patterns.py. Every route of the app must have an operation here
(tests/functional/test_api_openapi.py compares `app.url_map`), so a new route without
documentation fails a test instead of drifting. Request limits that only exist inside a
`parse` method are repeated here once; the same tests check each bound against that parser.

Ids are described as they go out to JavaScript clients: strings of digits (a 63-bit
number would lose digits as a JSON number there); inputs accept either spelling.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from flask import Blueprint, jsonify

from monolith import api_patterns
from monolith.web import is_public_id

from contracts import MAX_ID
from contracts.accounts import UserRecord
from contracts.races import PlannedRunRecord, RaceRecord
from contracts.reports import MonthlyReport
from contracts.runs import MAX_DISTANCE_M, MAX_ELAPSED_S, RunRecord
from contracts.strava import ImportResult
from shims import fields
from shims.openapi import ERROR_SCHEMA, KEY_HEADER, schema_for

bp = Blueprint("api_openapi", __name__, url_prefix="/api")
DOCUMENT_PATH = "/api/openapi.json"
WIRE_ID = {"type": "string", "pattern": "^[0-9]+$",
           "description": "a positive 64-bit integer, sent as a string of digits so that "
                          "JavaScript clients keep it exact"}
MAX_TEXT = 200  # fields.text's default: names, locations, descriptions, tokens
BEARER = [{"bearerAuth": []}, {"basicAuth": []}]


def _text(max_length: int, *, required: bool) -> dict[str, Any]:
    schema = {"type": "string", "pattern": api_patterns.stripped_text(max_length,
                                                                      required=required),
              "description": f"surrounding whitespace is removed; then at most {max_length} "
                             "characters" + ("" if required else " (empty or null: none)")}
    return schema if required else {"anyOf": [schema, {"type": "null"}]}


def _number(minimum: float, maximum: float, *, integer: bool = False,
            required: bool = True) -> dict[str, Any]:
    schema = {"type": "integer" if integer else "number", "minimum": minimum, "maximum": maximum}
    return schema if required else {"anyOf": [schema, {"type": "null"}]}


def _date(*, required: bool = True) -> dict[str, Any]:
    schema = {"type": "string", "format": "date", "pattern": api_patterns.date(),
              "description": f"YYYY-MM-DD, between the years {fields.FIRST_YEAR} and "
                             f"{fields.LAST_YEAR}"}
    return schema if required else {"anyOf": [schema, {"type": "null"}]}


def _timestamp() -> dict[str, Any]:
    """No `format: date-time`: RFC 3339 demands an offset, and without one the API takes
    the time as UTC."""
    return {"type": "string", "pattern": api_patterns.timestamp(),
            "description": "an ISO 8601 date-time, 2026-11-02T07:30:00, with an optional Z or "
                           "offset (converted to UTC); without one it is taken as UTC"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": list(required)}


PROFILE = {
    "first_name": _text(100, required=False),
    "last_name": _text(100, required=False),
    "age": _number(5, 120, integer=True, required=False),
    "weight": _number(20, 300, required=False),
    "max_hr": _number(80, 250, integer=True, required=False),
    "rest_hr": _number(25, 120, integer=True, required=False),
    "vo2max": _number(10, 100, required=False),
}


def _rest_below_max(schema: dict[str, Any]) -> dict[str, Any]:
    """Profile.parse refuses rest_hr >= max_hr. JSON Schema cannot compare two fields, but
    both are integers whose ranges overlap in a few values, so one rule per value says it.
    (A PATCH sending only one of them is compared with the stored other: state no
    document can show.)"""
    max_hr, rest_hr = PROFILE["max_hr"]["anyOf"][0], PROFILE["rest_hr"]["anyOf"][0]
    rules = [{"if": {"properties": {"max_hr": {"const": value}}, "required": ["max_hr"]},
              "then": {"properties": {"rest_hr": {"maximum": value - 1}}}}
             for value in range(max_hr["minimum"], rest_hr["maximum"] + 1)]
    return {**schema, "allOf": rules}


# No "format": "email": the server checks this pattern, not RFC 5321.
EMAIL = {"type": "string", "maxLength": 254, "pattern": api_patterns.email()}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 200}
SIGN_UP = _rest_below_max(_object({"email": EMAIL, "password": PASSWORD, **PROFILE},
                                   ("email", "password")))
RUN_FIELDS = {
    "name": _text(MAX_TEXT, required=True),
    "distance": _number(1, MAX_DISTANCE_M),
    "start_date": _timestamp(),
    "elapsed_time": _number(1, MAX_ELAPSED_S, integer=True),
    "average_heartrate": _number(20, 250, required=False),
    "total_elevation_gain": _number(0, 20000, required=False),
}
RUN_REQUIRED = ("name", "distance", "start_date", "elapsed_time")
# A race day must not have passed (409): a rule of the day the request comes, not of the
# document, so the schema cannot say it.
RACE = _object({"name": _text(MAX_TEXT, required=True), "date": _date(),
                "distance": _number(100, 1_000_000),
                "location": _text(MAX_TEXT, required=False)}, ("name", "date", "distance"))
PLANNED_RUN = _object({"date": _date(), "distance": _number(100, 1_000_000),
                       "description": _text(MAX_TEXT, required=False)}, ("date", "distance"))
GENERATE_PLAN = _object({"runs_per_week": _number(1, 7, integer=True),
                         "start": _date(required=False)}, ("runs_per_week",))
MONTH_QUERY = [
    {"name": "year", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": fields.FIRST_YEAR, "maximum": fields.LAST_YEAR},
     "description": "defaults to this year"},
    {"name": "month", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 12},
     "description": "defaults to this month"},
]

# (path, method): (summary, security, request body schema, success status, success schema,
# error statuses beyond the common ones). Schemas as strings name a contract record.
_ROUTES: dict[tuple[str, str], tuple] = {
    ("/api/users", "post"): ("sign up", [], SIGN_UP, 201, "UserRecord", (409, 429)),
    ("/api/tokens", "post"): ("a bearer token for basic auth, or for email and password",
                              [{"basicAuth": []}, {}],
                              _object({"email": EMAIL, "password": {"type": "string",
                                                                    "minLength": 1,
                                                                    "maxLength": 200}},
                                      ("email", "password")), 201, "Token", (429,)),
    ("/api/tokens", "delete"): ("revoke the bearer token this request carries, and every "
                                "renewal of its login", BEARER, None, 204, None, ()),
    ("/api/me", "get"): ("the caller's account", BEARER, None, 200, "UserRecord", ()),
    ("/api/me/logins", "delete"): ("log out everywhere: every session and token of the caller",
                                   BEARER, None, 204, None, ()),
    ("/api/me", "patch"): ("change the caller's profile", BEARER,
                           _rest_below_max(_object(PROFILE)), 200,
                           "UserRecord", ()),
    ("/api/me/strava", "put"): ("link a Strava token, once Strava accepts it", BEARER,
                                _object({"strava_token": _text(MAX_TEXT, required=True)},
                                        ("strava_token",)), 200, "UserRecord", (502,)),
    ("/api/me/strava", "delete"): ("unlink Strava", BEARER, None, 200, "UserRecord", ()),
    ("/api/admin/users", "get"): ("every account (admin)", BEARER, None, 200,
                                  ["UserRecord"], (403,)),
    ("/api/admin/users", "post"): ("create an account (admin)", BEARER,
                                   _rest_below_max(_object(
                                       {**SIGN_UP["properties"],
                                        "is_admin": {"type": ["boolean", "null"]}},
                                       ("email", "password"))), 201, "UserRecord",
                                   (403, 409)),
    ("/api/admin/users/{user_id}", "get"): ("an account (admin)", BEARER, None, 200,
                                            "UserRecord", (403, 404)),
    ("/api/admin/users/{user_id}", "patch"): (
        "change an account's profile or admin right (admin)", BEARER,
        _rest_below_max(_object({**PROFILE, "is_admin": {"type": ["boolean", "null"]}})), 200,
        "UserRecord",
        (403, 404, 409)),
    ("/api/admin/users/{user_id}", "delete"): ("delete an account (admin)", BEARER, None,
                                               204, None, (403, 404, 409)),
    ("/api/runs", "get"): ("the caller's runs in a month", BEARER, None, 200, "RunList", ()),
    ("/api/runs", "post"): ("add a run", BEARER, _object(RUN_FIELDS, RUN_REQUIRED), 201,
                            "RunRecord", ()),
    ("/api/runs/{run_id}", "get"): ("one of the caller's runs", BEARER, None, 200,
                                    "RunRecord", (404,)),
    ("/api/runs/{run_id}", "put"): ("replace a run", BEARER, _object(RUN_FIELDS, RUN_REQUIRED),
                                    200, "RunRecord", (404,)),
    ("/api/runs/{run_id}", "patch"): ("change some fields of a run", BEARER,
                                      _object(RUN_FIELDS), 200, "RunRecord", (404,)),
    ("/api/runs/{run_id}", "delete"): ("delete a run", BEARER, None, 204, None, (404,)),
    ("/api/strava/import", "post"): ("import the caller's Strava runs", BEARER, None, 200,
                                     "ImportResult", (404, 502)),
    ("/api/admin/strava/import", "post"): ("import every linked runner's Strava runs (admin)",
                                           BEARER, None, 200, "ImportResults", (403,)),
    ("/api/reports/monthly", "get"): ("the caller's monthly report", BEARER, None, 200,
                                      "MonthlyReport", ()),
    ("/api/races", "get"): ("every race", BEARER, None, 200, "RaceList", ()),
    ("/api/races", "post"): ("create a race", BEARER, RACE, 201, "RaceRecord", (409,)),
    ("/api/races/{race_id}", "get"): ("a race", BEARER, None, 200, "RaceRecord", (404,)),
    ("/api/races/{race_id}", "delete"): ("delete a race (its creator or an admin)", BEARER,
                                         None, 204, None, (403, 404)),
    ("/api/races/{race_id}/join", "post"): ("join a race", BEARER, None, 200, "RaceRecord",
                                            (404, 409)),
    ("/api/races/{race_id}/leave", "post"): ("leave a race, dropping its plan", BEARER, None,
                                             200, "RaceRecord", (404, 409)),
    ("/api/races/{race_id}/plan", "get"): ("the caller's plan for a race", BEARER, None, 200,
                                           "Plan", (404, 409)),
    ("/api/races/{race_id}/plan", "post"): ("add a planned run", BEARER, PLANNED_RUN, 201,
                                            "PlannedRunRecord", (404, 409)),
    ("/api/races/{race_id}/plan/generate", "post"): ("replace the plan with a generated one",
                                                     BEARER, GENERATE_PLAN, 201, "Plan",
                                                     (404, 409)),
    ("/api/races/{race_id}/plan/{planned_id}", "delete"): ("delete a planned run", BEARER,
                                                           None, 204, None, (404, 409)),
    (DOCUMENT_PATH, "get"): ("this document", [], None, 200, "OpenAPI", ()),
}
# OpenAPI links: where the id a creation answers can be used next (clients and schemathesis's
# stateful phase follow them). {source: (target paths, {path parameter: where its value is})}.
_RUN, _RACE, _USER = "/api/runs/{run_id}", "/api/races/{race_id}", "/api/admin/users/{user_id}"
_BY_ID = "$response.body#/id"
_LINKS: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, str]]] = {
    ("/api/runs", "post"): ((_RUN,), {"run_id": _BY_ID}),
    ("/api/races", "post"): ((_RACE, _RACE + "/join", _RACE + "/leave", _RACE + "/plan",
                              _RACE + "/plan/generate"), {"race_id": _BY_ID}),
    ("/api/races/{race_id}/plan", "post"): ((_RACE + "/plan/{planned_id}",),
                                            {"race_id": "$response.body#/race_id",
                                             "planned_id": _BY_ID}),
    ("/api/users", "post"): ((_USER,), {"user_id": _BY_ID}),
    ("/api/admin/users", "post"): ((_USER,), {"user_id": _BY_ID}),
}
_REASONS = {400: "invalid: malformed JSON, or a missing, mistyped, out-of-range or unknown "
                 "field (`field` names it)",
            401: "no or bad credentials", 403: "not allowed", 404: "no such resource",
            405: "method not allowed (`Allow` lists the methods)",
            409: "conflicts with the current state", 413: "the body is over the size limit",
            422: "the Idempotency-Key was used for another request, or Strava refused the "
                 "token",
            429: "too many attempts; `Retry-After` says when to try again",
            502: "Strava failed", 503: "a service behind the API, or Strava, is unavailable"}


def operations() -> list[tuple[str, str]]:
    """Every documented (path, method), without building an app."""
    return sorted(_ROUTES)


def api_document() -> dict[str, Any]:
    """A fresh copy each time: callers may change theirs."""
    return copy.deepcopy(_document())


@functools.cache
def _document() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, "Id": WIRE_ID}
    records = {name: schema_for(cls, components) for name, cls in (
        ("UserRecord", UserRecord), ("RunRecord", RunRecord), ("RaceRecord", RaceRecord),
        ("PlannedRunRecord", PlannedRunRecord), ("MonthlyReport", MonthlyReport),
        ("ImportResult", ImportResult))}
    components.update(_envelopes(records))
    _ids_as_strings(components)
    paths: dict[str, Any] = {}
    for (path, method), route in _ROUTES.items():
        paths.setdefault(path, {})[method] = _operation(path, method, *route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Runnerly API", "version": "1",
                 "description": "The monolith's public JSON API; see docs/api.md."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "a token from POST /api/tokens"},
            "basicAuth": {"type": "http", "scheme": "basic",
                          "description": "the account's email and password"}}},
    }


def _envelopes(records: dict[str, dict]) -> dict[str, Any]:
    """The shapes the views wrap records in."""
    ref = {"$ref": "#/components/schemas/Id"}
    return {
        "Token": _object({"token": {"type": "string"}, "token_type": {"const": "Bearer"},
                          "expires_in": {"type": "integer"}},
                         ("token", "token_type", "expires_in")),
        "RunList": _object({"year": {"type": "integer"}, "month": {"type": "integer"},
                            "runs": {"type": "array", "items": records["RunRecord"]}},
                           ("year", "month", "runs")),
        "RaceList": _object({"races": {"type": "array", "items": records["RaceRecord"]}},
                            ("races",)),
        "Plan": _object({"race_id": ref, "plan": {"type": "array",
                                                   "items": records["PlannedRunRecord"]}},
                        ("race_id", "plan")),
        "ImportResults": _object({"results": {"type": "array",
                                              "items": records["ImportResult"]}},
                                 ("results",)),
        "OpenAPI": {"type": "object", "required": ["openapi", "paths"]},
    }


def _ids_as_strings(components: dict[str, Any]) -> None:
    """Every id field the answers send as a string (monolith.web.is_public_id, the rule
    json_response applies) is described as one."""
    for schema in components.values():
        for name, prop in schema.get("properties", {}).items():
            if not is_public_id(name):
                continue
            if prop.get("type") == "integer":
                schema["properties"][name] = {"$ref": "#/components/schemas/Id"}
            elif any(option.get("type") == "integer" for option in prop.get("anyOf", ())):
                prop["anyOf"] = [{"$ref": "#/components/schemas/Id"}
                                 if option.get("type") == "integer" else option
                                 for option in prop["anyOf"]]


def _operation(path: str, method: str, summary: str, security: list, body: dict | None,
               status: int, result: Any, errors: tuple[int, ...]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "security": security,
                                 "parameters": _parameters(path, method),
                                 "responses": _responses(status, result, body, security,
                                                         errors, method)}
    if body is not None:
        # POST /api/tokens takes basic auth instead of a body: then the body is optional.
        operation["requestBody"] = {"required": {} not in security,
                                    "content": {"application/json": {"schema": body}}}
    if (path, method) in _LINKS:
        operation["responses"][str(status)]["links"] = _links(*_LINKS[path, method])
    return {"operationId": operation_id(path, method), **operation}


def operation_id(path: str, method: str) -> str:
    """`get_runs_run_id` for GET /api/runs/{run_id}."""
    words = path.removeprefix("/api/").replace("{", "").replace("}", "")
    return f"{method}_{words.replace('/', '_').replace('.', '_')}"


def _links(targets: tuple[str, ...], parameters: dict[str, str]) -> dict[str, Any]:
    links = {}
    for target in targets:
        for method in sorted(method for path, method in _ROUTES if path == target):
            needed = {name: value for name, value in parameters.items()
                      if "{" + name + "}" in target}
            links[operation_id(target, method)] = {"operationId": operation_id(target, method),
                                                   "parameters": needed}
    return links


def _parameters(path: str, method: str) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
              for name in ("user_id", "run_id", "race_id", "planned_id")
              if "{" + name + "}" in path]
    if path in ("/api/runs", "/api/reports/monthly") and method == "get":
        params += MONTH_QUERY
    if method in ("post", "put", "patch", "delete") and path != DOCUMENT_PATH:
        params.append(KEY_HEADER)
    return params


def _responses(status: int, result: Any, body: dict | None, security: list,
               errors: tuple[int, ...], method: str) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "done"}
    if result is not None:
        schema = {"type": "array", "items": {"$ref": f"#/components/schemas/{result[0]}"}} \
            if isinstance(result, list) else {"$ref": f"#/components/schemas/{result}"}
        success["content"] = {"application/json": {"schema": schema}}
    codes = {*errors, 400, 405}  # every operation parses a body, a query or a header
    if body is not None:
        codes |= {413}
    if security:  # basic auth is a login anywhere, throttled like POST /api/tokens
        codes |= {401, 429, 503}
    if method != "get":
        codes |= {422}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses = {str(status): success}
    for code in sorted(codes):
        responses[str(code)] = {"description": _REASONS[code], "content": error}
    return responses


@bp.get("/openapi.json")
def document():
    """Public, like the API's own docs: it describes the API, it holds nothing of anyone's."""
    return jsonify(api_document())
