"""Keyed writes answer alike on every side: a write repeated with its Idempotency-Key
answers its first outcome and is applied once, a key reused for other arguments is refused
naming the header, and racing repeats of one key make one write. Remote sides send the key
in the header; the data service keeps the outcome with the write."""

from __future__ import annotations

import uuid

from shims import idempotency
from contracts.runs import RUNS, RunRecord
from shims.errors import IdempotencyKeyReused, NotFound
from tests.contract.support import RACERS, run_input
from tests.contract.test_concurrency_contract import race

ADD_RUN, DELETE_RUN = RUNS.method("add_run"), RUNS.method("delete_run")


def with_key(key: str, method, *args):
    """The scope a service opens for a call carrying `key`: the call keeps it."""
    return idempotency.scope(key, idempotency.fingerprint(method, method.bind(args, {})))


def new_key() -> str:
    return str(uuid.uuid4())


def test_a_write_repeated_with_its_key_answers_the_first_outcome(side):
    user, run, key = side.user(), run_input(3), new_key()
    with with_key(key, ADD_RUN, user.id, run):
        first = side.runs.add_run(user.id, run)
    with with_key(key, ADD_RUN, user.id, run):
        again = side.runs.add_run(user.id, run)
    assert again == first and type(again) is RunRecord
    assert side.runs.list_runs(user.id, 2026, 5) == [first]


def test_a_key_reused_for_other_arguments_is_refused_naming_the_header(side):
    user, key = side.user(), new_key()
    with with_key(key, ADD_RUN, user.id, run_input(3)):
        side.runs.add_run(user.id, run_input(3))
    other = run_input(4)
    try:
        with with_key(key, ADD_RUN, user.id, other):
            side.runs.add_run(user.id, other)
    except IdempotencyKeyReused as refused:
        assert (refused.status, refused.field) == (422, "Idempotency-Key")
    else:
        raise AssertionError("a reused key was accepted")
    assert len(side.runs.list_runs(user.id, 2026, 5)) == 1


def test_a_contract_error_is_an_outcome_answered_again(side):
    user = side.user()
    run = side.runs.add_run(user.id, run_input(3))
    key = new_key()
    for _ in range(2):  # deleted, then the repeat answers as the delete did, not 404
        with with_key(key, DELETE_RUN, user.id, run.id):
            assert side.runs.delete_run(user.id, run.id) is None
    missing = new_key()
    for _ in range(2):
        try:
            with with_key(missing, DELETE_RUN, user.id, run.id):
                side.runs.delete_run(user.id, run.id)
        except NotFound:
            continue
        raise AssertionError("a delete of a missing run did not answer 404")


def test_racing_repeats_of_one_key_make_one_run(side):
    """Concurrent sends of one key (a client retrying while its first try is in flight):
    the repeats wait for the first and answer its outcome."""
    user, run, key = side.user(), run_input(5), new_key()

    def send() -> RunRecord:
        with with_key(key, ADD_RUN, user.id, run):
            return side.runs.add_run(user.id, run)

    outcomes = race([send] * RACERS)
    assert all(type(o) is RunRecord for o in outcomes), outcomes
    assert len({o.id for o in outcomes}) == 1
    assert side.runs.list_runs(user.id, 2026, 5) == [outcomes[0]]


def test_the_wire_refuses_a_malformed_key_naming_the_header(wire):
    reply = wire.transport.post("/rpc/runs/delete_run", {"args": {"user_id": 1, "run_id": 2}},
                                headers={"Idempotency-Key": "two words"})
    assert reply.status == 400
    assert reply.body["error"] == "invalid" and reply.body["field"] == "Idempotency-Key"


def test_the_wire_replays_the_same_body_for_a_repeated_key(wire):
    email = f"wire-{uuid.uuid4().hex[:10]}@example.com"
    payload = {"args": {"request": {"email": email, "password": "correct-horse-9"},
                        "is_admin": False}}
    headers = {"Idempotency-Key": new_key()}
    first = wire.transport.post("/rpc/accounts/sign_up", payload, headers=headers)
    again = wire.transport.post("/rpc/accounts/sign_up", payload, headers=headers)
    assert first.status == again.status == 200
    assert again.body == first.body
    plain = wire.transport.post("/rpc/accounts/sign_up", payload)
    assert (plain.status, plain.body["error"]) == (409, "conflict")  # without it: a new try
