"""A service built on the kit's skeleton (shims/service_app.py) around an app's own contract
(tests/kit/notes_app.py), through Flask's test client: `/rpc` behind tokens, JSON errors,
`/openapi.json`, `/healthz`, `/metrics` kept to loopback callers, and the request deadline.
What every extracted service answers, on every Flask and Werkzeug the kit supports."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import create_engine

from notes_app import NOTES, Side
from shims.service_app import service_app
from support import LOOPBACK, SESSION_KID, TOKEN_ISSUER, mint_token

OUTSIDER = {"REMOTE_ADDR": "10.0.0.7"}


def token(scope: str = "notes:read notes:write", audience: str = "notes") -> dict[str, str]:
    """Signed with the session's key, which the service's JWKS file publishes."""
    minted = mint_token(kid=SESSION_KID, audience=audience, scope=scope, now=time.time())
    return {"Authorization": f"Bearer {minted}"}


def make_service(session_jwks, implementation, engine=None):
    settings = {"REQUEST_DEADLINE": 5.0, "TOKEN_JWKS_URL": str(session_jwks),
                "TOKEN_ISSUER": TOKEN_ISSUER}
    return service_app("notes", settings, [(NOTES, implementation)], title="Notes",
                       description="An app's notes, extracted.", engine=engine)


@pytest.fixture
def side(tmp_path):
    made = Side(tmp_path / "notes.db")
    yield made
    made.close()


@pytest.fixture
def client(side, session_jwks):
    return make_service(session_jwks, side.notes, side.engine).test_client()


def call(client, method: str, headers=None, **args):
    return client.post(f"/rpc/notes/{method}", json={"args": args},
                       headers=token() if headers is None else headers,
                       environ_base=LOOPBACK)


def test_calls_are_answered_in_wire_form(client):
    author = call(client, "add_author", email="ada@example.com")
    assert author.status_code == 200, author.get_json()
    author_id = author.get_json()["result"]["id"]
    note = call(client, "add_note", author_id=author_id, text="Tempo").get_json()["result"]
    assert note == {"id": note["id"], "author_id": author_id, "text": "Tempo"}
    listed = call(client, "list_notes", author_id=author_id)
    assert listed.get_json() == {"result": [note]}
    assert listed.headers["ETag"]  # reads are tagged for conditional requests


def test_a_call_needs_a_token_for_this_service_with_the_methods_scope(client):
    missing = call(client, "list_notes", headers={}, author_id=1)
    assert missing.status_code == 401 and missing.get_json()["error"] == "invalid_token"
    elsewhere = call(client, "list_notes", headers=token(audience="reports"), author_id=1)
    assert elsewhere.status_code == 401
    read_only = call(client, "add_author", headers=token(scope="notes:read"), email="a@b.c")
    assert read_only.status_code == 403 and "notes:write" in read_only.get_json()["message"]


@pytest.mark.parametrize(("args", "field"), [
    ({"author_id": "seven"}, "author_id"),
    ({}, "author_id"),
    ({"author_id": 1, "colour": "red"}, "colour"),
])
def test_bad_arguments_are_a_400_naming_the_argument(client, args, field):
    response = call(client, "list_notes", **args)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid" and response.get_json()["field"] == field


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
def test_a_body_that_is_not_the_arguments_is_a_400_saying_what_to_send(client, body):
    response = client.post("/rpc/notes/list_notes", data=body, headers=token(),
                           content_type="application/json")
    assert response.status_code == 400 and '{"args"' in response.get_json()["message"]


def test_contract_errors_keep_their_status_and_code(client):
    response = call(client, "get_note", author_id=1, note_id=2)
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "no note 2 of author 1"}


def test_routes_and_methods_the_service_lacks_are_json_errors(client):
    unknown = call(client, "shred_notes", author_id=1)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "unknown_method"
    no_route = client.get("/nowhere", environ_base=LOOPBACK)
    assert no_route.status_code == 404 and no_route.get_json()["error"] == "route_not_found"
    wrong_verb = client.get("/rpc/notes/list_notes", environ_base=LOOPBACK)
    assert wrong_verb.status_code == 405
    assert wrong_verb.get_json()["error"] == "method_not_allowed"


def test_an_unexpected_failure_is_logged_and_answered_500_without_a_traceback(
        session_jwks, side, caplog):
    class Broken:
        def list_notes(self, author_id):
            raise RuntimeError("disk on fire")

    client = make_service(session_jwks, Broken()).test_client()
    with caplog.at_level(logging.ERROR, logger="turnout.service"):
        response = call(client, "list_notes", author_id=1)
    assert response.status_code == 500 and response.get_json()["error"] == "internal_error"
    assert "disk on fire" not in response.get_data(as_text=True)
    assert any("disk on fire" in str(record.exc_info[1]) for record in caplog.records
               if record.exc_info)


def test_the_openapi_document_describes_the_contract(client):
    document = client.get("/openapi.json", environ_base=LOOPBACK).get_json()
    assert document["info"]["title"] == "Notes"
    assert {"/rpc/notes/add_note", "/rpc/notes/list_notes"} <= set(document["paths"])


def test_health_reports_the_database(client, session_jwks, side, tmp_path):
    healthy = client.get("/healthz", environ_base=LOOPBACK)
    assert healthy.status_code == 200
    assert healthy.get_json()["service"] == "notes" and healthy.get_json()["status"] == "ok"
    unopenable = create_engine(f"sqlite:///{tmp_path}")  # a directory, not a database
    failing = make_service(session_jwks, side.notes, unopenable).test_client()
    response = failing.get("/healthz", environ_base=LOOPBACK)
    assert response.status_code == 503
    assert response.get_json()["status"] == "failing"
    assert response.get_json()["database"] == "OperationalError"
    unopenable.dispose()


def test_metrics_count_the_calls_served(client):
    call(client, "list_notes", author_id=1)
    call(client, "get_note", author_id=1, note_id=2)
    text = client.get("/metrics", environ_base=LOOPBACK).get_data(as_text=True)
    served = [line for line in text.splitlines()
              if line.startswith("turnout_served_calls_total{") and 'contract="notes"' in line]
    assert any('outcome="ok"' in line for line in served), served
    assert any('outcome="not_found"' in line for line in served), served


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_ops_endpoints_answer_loopback_callers_only(client, path):
    refused = client.get(path, environ_base=OUTSIDER)
    assert refused.status_code == 403 and "loopback" in refused.get_json()["message"]
    assert client.get(path, environ_base=LOOPBACK).status_code == 200


def test_a_malformed_deadline_is_a_400_naming_the_header(client):
    response = client.post("/rpc/notes/list_notes", json={"args": {"author_id": 1}},
                           headers={**token(), "X-Turnout-Deadline-Ms": "soon"},
                           environ_base=LOOPBACK)
    assert response.status_code == 400
    assert "X-Turnout-Deadline-Ms" in response.get_json()["message"]
