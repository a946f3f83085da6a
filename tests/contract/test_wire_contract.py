"""What only the wire can send: the data service refuses it alike in-process and over HTTP,
the way the local side refuses the same values, and documents every method it serves."""

from __future__ import annotations

import pytest

from contracts.accounts import ACCOUNTS
from contracts.runs import RUNS, RunInput
from shims.errors import ValidationError
from shims.sync import SYNC
from tests.contract.support import PASSWORD, unique_email

ADD_RUN = "/rpc/runs/add_run"
RUN = {"name": "Wire run", "distance": 5000, "start_date": "2026-05-01T07:00:00",
       "elapsed_time": 1500}


def sign_up(wire) -> int:
    reply = wire.post("/rpc/accounts/sign_up", {"args": {"request": {
        "email": unique_email("wire"), "password": PASSWORD}}})
    assert reply.status == 200, reply.body
    return reply.body["result"]["id"]


def assert_invalid(reply, field: str | None) -> None:
    assert reply.status == 400, reply.body
    assert reply.body["error"] == "invalid"
    assert isinstance(reply.body["message"], str) and reply.body["message"]
    assert reply.body.get("field") == field


def test_a_well_formed_call_answers_its_result(wire):
    user_id = sign_up(wire)
    reply = wire.post(ADD_RUN, {"args": {"user_id": user_id, "run": RUN}})
    assert reply.status == 200, reply.body
    result = reply.body["result"]
    assert set(result) == {"id", "user_id", "name", "distance", "start_date", "elapsed_time",
                           "average_speed", "average_heartrate", "total_elevation_gain",
                           "strava_id"}
    assert (result["user_id"], result["name"], result["distance"], result["start_date"]) == (
        user_id, "Wire run", 5000.0, "2026-05-01T07:00:00+00:00")
    assert isinstance(result["id"], int) and result["id"] > 2**53  # 63-bit ids, as JSON ints


@pytest.mark.parametrize(("user_id", "what"), [
    ("x", "text"), (True, "a boolean"), (1.5, "a fraction"), (None, "null"), ([1], "a list"),
])
def test_an_argument_of_the_wrong_type_is_refused(wire, user_id, what):
    assert_invalid(wire.post(ADD_RUN, {"args": {"user_id": user_id, "run": RUN}}), "user_id")


def test_an_unknown_argument_is_refused(wire):
    user_id = sign_up(wire)
    reply = wire.post(ADD_RUN, {"args": {"user_id": user_id, "run": RUN, "when": "now"}})
    assert_invalid(reply, "when")
    assert "when" in reply.body["message"]


def test_a_missing_argument_is_refused(wire):
    user_id = sign_up(wire)
    reply = wire.post(ADD_RUN, {"args": {"user_id": user_id}})
    assert_invalid(reply, "run")
    assert_invalid(wire.post(ADD_RUN, {"args": {"run": RUN}}), "user_id")


def test_a_non_object_argument_is_refused(wire):
    assert_invalid(wire.post(ADD_RUN, {"args": {"user_id": 1, "run": "5 km"}}), "run")
    assert_invalid(wire.post(ADD_RUN, {"args": {"user_id": 1, "run": [RUN]}}), "run")


@pytest.mark.parametrize("payload", [None, [], "args", 42, {}, {"args": None}, {"args": []},
                                     {"arguments": {"user_id": 1, "run": RUN}}])
def test_a_body_that_is_not_an_args_object_is_refused(wire, payload):
    assert_invalid(wire.post(ADD_RUN, payload), None)


@pytest.mark.parametrize("body", [b"", b"not json", b"{\"args\": ", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(wire, body):
    status, answer = wire.post_bytes(ADD_RUN, body)
    assert status == 400
    assert answer["error"] == "invalid"


@pytest.mark.parametrize(("change", "field"), [
    ({"distance": -5}, "distance"),
    ({"distance": True}, "distance"),
    ({"elapsed_time": 0}, "elapsed_time"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"start_date": "1969-12-31T23:00:00"}, "start_date"),
    ({"name": ""}, "name"),
    ({"average_heartrate": 400}, "average_heartrate"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_run_is_refused_as_the_local_side_refuses_it(wire, change, field):
    user_id = sign_up(wire)
    bad = {**RUN, **change}
    with pytest.raises(ValidationError) as local:
        RunInput.parse(bad, allow_strava_id=True)
    assert local.value.field == field
    reply = wire.post(ADD_RUN, {"args": {"user_id": user_id, "run": bad}})
    assert reply.status == 400 and reply.body["error"] == "invalid"
    assert reply.body["message"] == local.value.message
    assert reply.body["field"] in (field, f"run.{field}")  # placed at its argument


def test_a_bad_sign_up_is_refused(wire):
    reply = wire.post("/rpc/accounts/sign_up", {"args": {"request": {
        "email": "not-an-email", "password": PASSWORD}}})
    assert reply.status == 400 and reply.body["error"] == "invalid"
    assert reply.body["field"] in ("email", "request.email")


def test_list_runs_refuses_month_13_over_the_wire(wire):
    user_id = sign_up(wire)
    reply = wire.post("/rpc/runs/list_runs", {"args": {"user_id": user_id, "year": 2026,
                                                       "month": 13}})
    assert_invalid(reply, "month")


@pytest.mark.parametrize("path", ["/rpc/runs/fly", "/rpc/races/add_run", "/rpc/runs/_columns",
                                  "/rpc/accounts/__init__"])
def test_an_unknown_method_is_not_found(wire, path):
    reply = wire.post(path, {"args": {}})
    assert reply.status == 404
    assert reply.body["error"] == "unknown_method"  # never the contract's own not_found


def test_an_unknown_route_answers_json(wire):
    status, body = wire.get("/no/such/page")
    assert status == 404
    assert body["error"] == "route_not_found"
    status, body = wire.get(ADD_RUN)  # the RPC routes take POST only
    assert status == 405
    assert body["error"] == "method_not_allowed"


def test_healthz(wire):
    status, body = wire.get("/healthz")
    assert status == 200
    assert (body["service"], body["status"]) == ("dataservice", "ok")


def test_openapi_documents_every_method_with_its_kind(wire):
    status, document = wire.get("/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    expected = {f"/rpc/{spec.name}/{method.name}": method
                for spec in (ACCOUNTS, RUNS, SYNC) for method in spec.methods.values()}
    assert {path for path in paths if path.startswith("/rpc/")} == set(expected)
    for path, method in expected.items():
        operation = paths[path]["post"]
        assert operation["x-turnout-kind"] == method.kind, path
        assert operation["operationId"] == f"{method.contract}_{method.name}"
        args = operation["requestBody"]["content"]["application/json"]["schema"][
            "properties"]["args"]
        assert set(args["properties"]) == {param.name for param in method.params}, path
        assert set(args["required"]) == {param.name for param in method.params
                                         if param.required}, path
        assert args["additionalProperties"] is False
    kinds = {path: paths[path]["post"]["x-turnout-kind"] for path in expected}
    assert kinds["/rpc/accounts/authenticate"] == "read"
    assert kinds["/rpc/runs/import_runs"] == "write"
    assert kinds["/rpc/sync/apply"] == "write"
    assert kinds["/rpc/sync/digest"] == "read"
