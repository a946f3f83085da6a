"""The OpenAPI 3.1 document generated from the contracts: structure checked by hand
(no validator dependency), against the very specs it was generated from."""

import dataclasses
import json
import re

import pytest

from contract_types import contract_dataclasses
from contracts.accounts import ACCOUNTS
from contracts.races import RACES
from contracts.reports import REPORTS
from contracts.runs import RUNS
from contracts.strava import STRAVA
from shims.fields import SPACE
from shims.openapi import ERROR_SCHEMA, openapi_document, schema_for
from shims.sync import SYNC

DATA_SERVICE_SPECS = (ACCOUNTS, RUNS, SYNC)
ALL_SPECS = (ACCOUNTS, RUNS, SYNC, RACES, REPORTS, STRAVA)
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
SCHEMA_KEYWORDS = {"type", "properties", "required", "items", "anyOf", "$ref",
                   "additionalProperties", "format", "minLength", "maxLength", "minimum",
                   "maximum", "pattern"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def document():
    return openapi_document("Runnerly data service", "1.0", DATA_SERVICE_SPECS, "Users and runs")


def schemas_in(document):
    """Every JSON Schema object in the document (request, response and component schemas)."""
    found = []

    def walk(schema):
        found.append(schema)
        for key in ("properties",):
            for sub in schema.get(key, {}).values():
                walk(sub)
        for sub in schema.get("anyOf", []):
            walk(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                walk(schema[key])

    for item in document["paths"].values():
        for operation in item.values():
            if "requestBody" in operation:
                for media in operation["requestBody"]["content"].values():
                    walk(media["schema"])
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    walk(media["schema"])
    for schema in document["components"]["schemas"].values():
        walk(schema)
    return found


def refs_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def resolve(document, ref):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_top_level(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Runnerly data service", "version": "1.0",
                                "description": "Users and runs"}
    assert set(document) == {"openapi", "info", "paths", "components"}
    assert json.loads(json.dumps(document, allow_nan=False)) == document  # plain JSON


def test_every_method_has_exactly_one_post_path(document):
    expected = {f"/rpc/{spec.name}/{name}" for spec in DATA_SERVICE_SPECS for name in spec.methods}
    assert set(document["paths"]) == expected | {"/healthz"}
    for path in expected:
        assert set(document["paths"][path]) == {"post"}
    assert set(document["paths"]["/healthz"]) == {"get"}
    for path, item in document["paths"].items():
        assert path.startswith("/")
        assert set(item) <= HTTP_METHODS


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()
           if "operationId" in op]
    assert len(ids) == len(set(ids)) == sum(len(spec.methods) for spec in DATA_SERVICE_SPECS)


@pytest.mark.parametrize("spec", DATA_SERVICE_SPECS, ids=lambda s: s.name)
def test_each_operation_matches_its_method(document, spec):
    for method in spec.methods.values():
        operation = document["paths"][f"/rpc/{spec.name}/{method.name}"]["post"]
        assert operation["operationId"] == f"{spec.name}_{method.name}"
        assert operation["tags"] == [spec.name]
        assert operation["x-turnout-kind"] == method.kind in ("read", "write")
        assert operation["summary"]

        body = operation["requestBody"]
        assert body["required"] is True
        envelope = body["content"]["application/json"]["schema"]
        assert envelope["type"] == "object" and envelope["required"] == ["args"]
        args = envelope["properties"]["args"]
        assert args["type"] == "object"
        assert args["additionalProperties"] is False
        assert list(args["properties"]) == [p.name for p in method.params]
        assert args["required"] == [p.name for p in method.params if p.required]
        for param in method.params:
            assert args["properties"][param.name] == schema_for(param.annotation, {})

        responses = operation["responses"]
        assert set(responses) == {"200", "4XX", "5XX"}
        ok = responses["200"]["content"]["application/json"]["schema"]
        assert ok["required"] == ["result"]
        assert ok["properties"]["result"] == schema_for(method.returns, {})
        for code in ("4XX", "5XX"):
            error = responses[code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
        for response in responses.values():
            assert response["description"]


def test_writes_document_the_idempotency_key_and_every_call_the_deadline(document):
    for spec in DATA_SERVICE_SPECS:
        for method in spec.methods.values():
            operation = document["paths"][f"/rpc/{spec.name}/{method.name}"]["post"]
            headers = {p["name"]: p for p in operation["parameters"]}
            assert all(p["in"] == "header" and p["required"] is False for p in headers.values())
            assert headers["X-Turnout-Deadline-Ms"]["schema"]["type"] == "integer"
            if method.is_read:
                assert set(headers) == {"X-Turnout-Deadline-Ms"}
            else:
                assert set(headers) == {"Idempotency-Key", "X-Turnout-Deadline-Ms"}
                pattern = headers["Idempotency-Key"]["schema"]["pattern"]
                assert re.fullmatch(pattern, "0b9c8e3e-2f4e-4a59-9c5e-0b0d9c1f2a3b")
                assert not re.fullmatch(pattern, "two words")


def test_optional_arguments_are_not_required(document):
    sign_up = document["paths"]["/rpc/accounts/sign_up"]["post"]
    args = sign_up["requestBody"]["content"]["application/json"]["schema"]["properties"]["args"]
    assert args["required"] == ["request"]
    assert set(args["properties"]) == {"request", "is_admin"}
    assert args["properties"]["is_admin"] == {"type": "boolean"}
    no_args = document["paths"]["/rpc/accounts/list_users"]["post"]
    assert no_args["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "args"] == {"type": "object", "additionalProperties": False, "properties": {},
                    "required": []}


def test_every_ref_resolves_to_a_component(document):
    refs = set(refs_in(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        target = resolve(document, ref)
        assert target  # no placeholder left behind
        assert target.get("type") == "object"


def test_every_component_is_used_and_matches_its_dataclass(document):
    components = document["components"]["schemas"]
    assert components["Error"] == ERROR_SCHEMA
    used = {ref.rsplit("/", 1)[1] for ref in refs_in(document)}
    assert used == set(components)
    classes = contract_dataclasses(DATA_SERVICE_SPECS)
    assert set(components) == {cls.__name__ for cls in classes} | {"Error"}
    for cls in classes:
        schema = components[cls.__name__]
        fields = dataclasses.fields(cls)
        assert schema["additionalProperties"] is False
        assert list(schema["properties"]) == [f.name for f in fields]
        assert schema["required"] == [f.name for f in fields
                                      if f.default is dataclasses.MISSING
                                      and f.default_factory is dataclasses.MISSING]


def test_every_schema_is_well_formed(document):
    for schema in schemas_in(document):
        assert set(schema) <= SCHEMA_KEYWORDS, schema
        if "$ref" in schema:
            assert set(schema) == {"$ref"}  # nothing beside a $ref
        if "type" in schema:
            assert schema["type"] in JSON_TYPES
        if "required" in schema:
            assert set(schema["required"]) <= set(schema.get("properties", {})), schema
            assert len(schema["required"]) == len(set(schema["required"]))
        if schema.get("type") == "array":
            assert isinstance(schema["items"], dict)
        if "format" in schema:
            assert (schema["type"], schema["format"]) in (
                ("string", "date"), ("string", "date-time"), ("integer", "int64"))
        assert "nullable" not in schema  # OpenAPI 3.0 style; 3.1 says anyOf with null


def test_shapes_of_representative_types(document):
    components = document["components"]["schemas"]
    run = components["RunRecord"]["properties"]
    assert run["id"] == {"type": "integer", "format": "int64"}
    assert run["distance"] == {"type": "number"}
    assert run["start_date"] == {"type": "string", "format": "date-time"}
    assert run["strava_id"] == {"anyOf": [{"type": "integer", "format": "int64"},
                                          {"type": "null"}]}
    change = components["RowChange"]["properties"]
    assert change["version"] == {"type": "integer"}
    assert change["row"] == {"anyOf": [{"type": "object", "additionalProperties": {}},
                                       {"type": "null"}]}
    assert components["TableDigest"]["properties"]["checksums"] == {
        "type": "object", "additionalProperties": {"type": "string"}}
    delete = document["paths"]["/rpc/runs/delete_run"]["post"]["responses"]["200"]
    assert delete["content"]["application/json"]["schema"]["properties"]["result"] == {
        "type": "null"}
    list_runs = document["paths"]["/rpc/runs/list_runs"]["post"]["responses"]["200"]
    assert list_runs["content"]["application/json"]["schema"]["properties"]["result"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/RunRecord"}}


def test_every_contract_can_be_documented():
    document = openapi_document("all", "0", ALL_SPECS)
    assert len(document["paths"]) == sum(len(spec.methods) for spec in ALL_SPECS) + 1
    for ref in refs_in(document):
        assert resolve(document, ref)["type"] == "object"
    per_day = document["components"]["schemas"]["MonthlyReport"]["properties"]["per_day"]
    assert per_day == {"type": "array", "items": {"$ref": "#/components/schemas/DayDistance"}}


def test_the_data_service_serves_the_same_document(tmp_path, document):
    from extracted.dataservice.app import create_app

    app = create_app({"RUN_DIR": str(tmp_path),
                      "DATASERVICE_DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}"})
    served = app.test_client().get("/openapi.json")
    assert served.status_code == 200
    body = served.get_json()
    assert body["paths"] == document["paths"]
    assert body["components"] == document["components"]
    assert body["openapi"] == "3.1.0"
    app.extensions["turnout_engine"].dispose()


def test_the_limits_the_server_enforces_are_in_the_document():
    document = openapi_document("all", "0", ALL_SPECS)
    components = document["components"]["schemas"]
    run = components["RunInput"]["properties"]
    assert run["name"] == {"type": "string", "maxLength": 200, "pattern": f"[^{SPACE}]"}
    assert run["distance"] == {"type": "number", "minimum": 1, "maximum": 1_000_000}
    assert run["strava_id"]["anyOf"][0] == {"type": "integer", "minimum": 1,
                                            "maximum": 2**63 - 1, "format": "int64"}
    sign_up = components["SignUp"]["properties"]
    assert (sign_up["password"]["minLength"], sign_up["password"]["maxLength"]) == (8, 200)
    assert sign_up["email"]["maxLength"] == 254 and "@" in sign_up["email"]["pattern"]
    assert components["Profile"]["properties"]["age"]["anyOf"][0] == {
        "type": "integer", "minimum": 5, "maximum": 120}
    report = document["paths"]["/rpc/reports/monthly_report"]["post"]["requestBody"]
    args = report["content"]["application/json"]["schema"]["properties"]["args"]["properties"]
    assert args["year"] == {"type": "integer", "minimum": 1970, "maximum": 2100}
    assert args["month"] == {"type": "integer", "minimum": 1, "maximum": 12}
    assert args["user_id"] == {"type": "integer", "format": "int64"}
