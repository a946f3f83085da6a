"""shims.idempotency: which key each write of a request carries."""

from __future__ import annotations

import gevent
import pytest

from notes_app import NOTES
from shims import idempotency
from shims.errors import ValidationError

ADD_NOTE, DELETE_NOTE = NOTES.method("add_note"), NOTES.method("delete_note")


def add(author_id: int = 3, text: str = "Tempo") -> dict:
    return ADD_NOTE.bind((author_id, text), {})


@pytest.mark.parametrize("key", ["a", "0b9c8e3e-2f4e-4a59-9c5e-0b0d9c1f2a3b",
                                 "01HZY3K5Q6ZJ8V9W0X1Y2Z3A4B", "dGVzdA==", "x" * 255,
                                 "order:17/try.2_~+"])
def test_well_formed_keys_are_taken_as_they_are(key):
    assert idempotency.parse(key) == key


@pytest.mark.parametrize("key", ["", " ", "two words", "x" * 256, "naïve", "a\nb", 'q"uote',
                                 "semi;colon", "comma,key"])
def test_malformed_keys_are_refused_naming_the_header(key):
    with pytest.raises(ValidationError) as refused:
        idempotency.parse(key)
    assert refused.value.field == "Idempotency-Key"
    assert "Idempotency-Key" in refused.value.message


def test_no_header_means_no_key():
    assert idempotency.parse(None) is None


def test_outside_a_scope_a_write_has_no_key_and_a_fresh_one_is_random():
    assert idempotency.for_call(ADD_NOTE, add()) is None
    assert idempotency.fresh() != idempotency.fresh()


def test_the_forwarded_call_keeps_the_callers_key():
    with idempotency.scope("client-key", idempotency.fingerprint(ADD_NOTE, add())):
        assert idempotency.for_call(ADD_NOTE, add()) == "client-key"


def test_other_writes_get_keys_derived_alike_on_every_repeat():
    def keys_of_one_request() -> list[str]:
        with idempotency.scope("client-key"):
            return [idempotency.for_call(ADD_NOTE, add()),
                    idempotency.for_call(DELETE_NOTE, DELETE_NOTE.bind((3, 7), {}))]

    first, repeat = keys_of_one_request(), keys_of_one_request()
    assert first == repeat
    assert len(set(first)) == 2 and "client-key" not in first


def test_a_derived_key_depends_on_the_key_the_arguments_and_the_occurrence():
    with idempotency.scope("client-key"):
        one, two = idempotency.for_call(ADD_NOTE, add()), idempotency.for_call(ADD_NOTE, add())
        other_arguments = idempotency.for_call(ADD_NOTE, add(author_id=4))
    with idempotency.scope("another-key"):
        other_key = idempotency.for_call(ADD_NOTE, add())
    assert len({one, two, other_arguments, other_key}) == 4


def test_a_reused_key_with_other_arguments_is_not_forwarded_as_the_same_call():
    """The service then sees the caller's key with other arguments and refuses it (422)."""
    with idempotency.scope("client-key", idempotency.fingerprint(ADD_NOTE, add())):
        assert idempotency.for_call(ADD_NOTE, add(author_id=4)) != "client-key"


def test_scopes_nest_and_none_hides_the_outer_one():
    with idempotency.scope("outer"):
        outer = idempotency.for_call(ADD_NOTE, add())
        with idempotency.scope(None):
            assert idempotency.for_call(ADD_NOTE, add()) is None
        assert idempotency.for_call(ADD_NOTE, add()) not in (None, outer)  # second occurrence


def test_each_greenlet_has_its_own_scope():
    with idempotency.scope("client-key", idempotency.fingerprint(ADD_NOTE, add())):
        elsewhere = gevent.spawn(idempotency.for_call, ADD_NOTE, add()).get(timeout=5)
    assert elsewhere is None


def test_scoped_keys_of_two_owners_never_meet():
    assert idempotency.scoped("user:1", "k") != idempotency.scoped("user:2", "k")
    assert idempotency.scoped("user:1", "k") == idempotency.scoped("user:1", "k")
