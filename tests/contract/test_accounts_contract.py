"""The Accounts contract, method by method, on every side (see conftest.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts import MAX_ID
from contracts.accounts import Profile, SignUp, StravaLink, UserRecord
from shims.errors import Conflict, NotFound, Unauthorized, ValidationError
from tests.contract.support import PASSWORD, unique_email

IMPOSSIBLE_IDS = (0, -1, MAX_ID + 1)
PROFILE = Profile(first_name="Grace", last_name="Hopper", age=36, weight=58.5, max_hr=190,
                  rest_hr=50, vo2max=52.0)


def missing_id(side) -> int:
    """A well-formed id no user has: a fresh user's, once deleted."""
    user = side.user()
    side.accounts.delete_user(user.id)
    return user.id


def test_sign_up_returns_the_new_user(side):
    email = unique_email()
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    user = side.accounts.sign_up(SignUp(email=email, password=PASSWORD, profile=PROFILE))
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    assert type(user) is UserRecord
    assert isinstance(user.id, int) and 2**40 < user.id <= MAX_ID
    assert user.email == email
    assert user.profile == PROFILE
    assert (user.is_admin, user.strava_linked) == (False, False)
    assert type(user.created_at) is dt.datetime and user.created_at.tzinfo is None
    assert before <= user.created_at <= after


def test_sign_up_without_a_profile_gets_empty_fields(side):
    user = side.accounts.sign_up(SignUp(email=unique_email(), password=PASSWORD,
                                        profile=Profile()))
    assert user.profile == Profile()
    assert (user.first_name, user.last_name, user.age) == ("", "", None)
    assert user.display_name == user.email


def test_sign_up_as_admin(side):
    assert side.user(admin=True).is_admin is True
    assert side.user(admin=False).is_admin is False


def test_sign_up_takes_is_admin_by_position_as_the_contract_declares(side):
    request = SignUp(email=unique_email(), password=PASSWORD, profile=Profile())
    assert side.accounts.sign_up(request, True).is_admin is True


def test_ids_differ_per_user(side):
    assert len({side.user().id for _ in range(5)}) == 5


def test_sign_up_twice_with_one_email_is_a_conflict(side):
    email = unique_email()
    first = side.accounts.sign_up(SignUp(email=email, password=PASSWORD, profile=Profile()))
    with pytest.raises(Conflict) as raised:
        side.accounts.sign_up(SignUp(email=email, password="another-pass-1", profile=PROFILE))
    assert raised.value.field == "email"
    assert side.accounts.get_user(first.id) == first  # the first account is untouched


def test_authenticate_with_the_right_password(side):
    user = side.user(first_name="Ada")
    assert side.accounts.authenticate(user.email, PASSWORD) == user
    # Emails are matched the way they were stored: trimmed, lower-case.
    assert side.accounts.authenticate(f"  {user.email.upper()} ", PASSWORD) == user


def test_a_password_is_taken_exactly_as_typed(side):
    user = side.user(password=" spaced pass ")
    assert side.accounts.authenticate(user.email, " spaced pass ") == user
    with pytest.raises(Unauthorized):
        side.accounts.authenticate(user.email, "spaced pass")


def test_authenticate_with_a_wrong_password_or_unknown_email(side):
    user = side.user()
    with pytest.raises(Unauthorized) as wrong_password:
        side.accounts.authenticate(user.email, PASSWORD + "x")
    with pytest.raises(Unauthorized) as unknown_email:
        side.accounts.authenticate(unique_email("nobody"), PASSWORD)
    # Both failures read the same: the answer does not reveal which emails exist.
    assert wrong_password.value.message == unknown_email.value.message


def test_get_user(side):
    user = side.user(**vars(PROFILE))
    fetched = side.accounts.get_user(user.id)
    assert type(fetched) is UserRecord
    assert fetched == user


@pytest.mark.parametrize("user_id", IMPOSSIBLE_IDS)
def test_get_user_with_an_impossible_id_is_not_found(side, user_id):
    with pytest.raises(NotFound):
        side.accounts.get_user(user_id)


def test_get_a_missing_user_is_not_found(side):
    with pytest.raises(NotFound):
        side.accounts.get_user(missing_id(side))


def test_list_users_includes_each_new_user(side):
    mine = [side.user(first_name=f"Runner {i}") for i in range(3)]
    listed = side.accounts.list_users()
    assert all(type(user) is UserRecord for user in listed)
    ids = [user.id for user in listed]
    assert ids == sorted(ids)  # ordered by id
    assert len(set(ids)) == len(ids)
    by_id = {user.id: user for user in listed}
    assert [by_id.get(user.id) for user in mine] == mine


def test_update_profile(side):
    user = side.user(first_name="Ada", age=30)
    updated = side.accounts.update_profile(user.id, PROFILE)
    assert type(updated) is UserRecord
    assert updated.profile == PROFILE
    # Everything but the profile stays as it was.
    assert (updated.id, updated.email, updated.is_admin, updated.strava_linked,
            updated.created_at) == (user.id, user.email, user.is_admin, user.strava_linked,
                                    user.created_at)
    assert side.accounts.get_user(user.id) == updated
    cleared = side.accounts.update_profile(user.id, Profile())
    assert cleared.profile == Profile()
    assert side.accounts.get_user(user.id) == cleared


def test_update_the_profile_of_a_missing_user_is_not_found(side):
    with pytest.raises(NotFound):
        side.accounts.update_profile(missing_id(side), PROFILE)


def test_set_admin_promotes_and_demotes(side):
    side.user(admin=True)  # so the runner below is never the last admin
    runner = side.user()
    promoted = side.accounts.set_admin(runner.id, True)
    assert type(promoted) is UserRecord
    assert promoted.is_admin is True
    assert promoted == UserRecord(**{**vars(runner), "is_admin": True})
    assert side.accounts.get_user(runner.id).is_admin is True
    assert side.accounts.set_admin(runner.id, True) == promoted  # idempotent
    demoted = side.accounts.set_admin(runner.id, False)
    assert demoted == runner
    assert side.accounts.get_user(runner.id) == runner


def test_set_admin_of_a_missing_user_is_not_found(side):
    with pytest.raises(NotFound):
        side.accounts.set_admin(missing_id(side), True)


def test_delete_user(side):
    user = side.user()
    other = side.user()
    assert side.accounts.delete_user(user.id) is None
    with pytest.raises(NotFound):
        side.accounts.get_user(user.id)
    with pytest.raises(Unauthorized):
        side.accounts.authenticate(user.email, PASSWORD)
    listed = {u.id for u in side.accounts.list_users()}
    assert user.id not in listed
    assert other.id in listed
    with pytest.raises(NotFound):
        side.accounts.delete_user(user.id)  # a second time: gone already


def test_delete_an_admin_while_another_admin_remains(side):
    side.user(admin=True)
    admin = side.user(admin=True)
    side.accounts.delete_user(admin.id)
    with pytest.raises(NotFound):
        side.accounts.get_user(admin.id)


def test_the_email_of_a_deleted_user_can_sign_up_again(side):
    user = side.user()
    side.accounts.delete_user(user.id)
    again = side.accounts.sign_up(SignUp(email=user.email, password=PASSWORD,
                                         profile=Profile()))
    assert again.email == user.email
    assert again.id != user.id


def test_link_and_unlink_strava(side):
    user = side.user()
    linked = side.accounts.link_strava(user.id, "  strava-token-1 ")
    assert type(linked) is UserRecord
    assert linked == UserRecord(**{**vars(user), "strava_linked": True})
    assert side.accounts.get_user(user.id).strava_linked is True

    link = side.accounts.strava_link(user.id)
    assert type(link) is StravaLink
    assert link == StravaLink(user_id=user.id, token="strava-token-1")  # stored trimmed
    assert link in side.accounts.strava_links()

    relinked = side.accounts.link_strava(user.id, "strava-token-2")
    assert relinked == linked
    assert side.accounts.strava_link(user.id).token == "strava-token-2"

    unlinked = side.accounts.link_strava(user.id, None)
    assert unlinked == user
    with pytest.raises(NotFound) as raised:
        side.accounts.strava_link(user.id)
    assert raised.value.field == "strava_token"
    assert user.id not in {link.user_id for link in side.accounts.strava_links()}


@pytest.mark.parametrize("token", ["", "   ", "x" * 201])
def test_link_strava_with_an_invalid_token_is_refused(side, token):
    user = side.user()
    side.accounts.link_strava(user.id, "kept")
    with pytest.raises(ValidationError) as raised:
        side.accounts.link_strava(user.id, token)
    assert raised.value.field == "token"  # the argument, as the wire names it
    assert side.accounts.strava_link(user.id).token == "kept"


def test_link_strava_for_a_missing_user_is_not_found(side):
    with pytest.raises(NotFound):
        side.accounts.link_strava(missing_id(side), "token")


def test_strava_links_lists_each_linked_user_once(side):
    linked = [side.user() for _ in range(3)]
    unlinked = side.user()
    for number, user in enumerate(linked):
        side.accounts.link_strava(user.id, f"token-{number}")
    links = side.accounts.strava_links()
    assert all(type(link) is StravaLink for link in links)
    ids = [link.user_id for link in links]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    mine = [link for link in links if link.user_id in {user.id for user in linked}]
    assert mine == sorted((StravaLink(user_id=user.id, token=f"token-{number}")
                           for number, user in enumerate(linked)), key=lambda link: link.user_id)
    assert unlinked.id not in ids


def test_strava_link_of_a_missing_user_is_not_found(side):
    with pytest.raises(NotFound):
        side.accounts.strava_link(missing_id(side))


def test_inputs_built_in_code_are_normalised_alike(side):
    """Not only `parse` output: a SignUp or Profile built by hand is taken as the wire takes it."""
    local_part = unique_email().split("@")[0]
    user = side.accounts.sign_up(SignUp(email=f"  {local_part.upper()}@Example.COM ",
                                        password=PASSWORD, profile=Profile(first_name=" Ada ")))
    assert user.email == f"{local_part}@example.com"
    assert user.first_name == "Ada"
    assert side.accounts.authenticate(user.email, PASSWORD) == user
    assert side.accounts.update_profile(user.id, Profile(last_name=" Lovelace ")).last_name == \
        "Lovelace"


@pytest.mark.parametrize(("request_changes", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"password": "short"}, "password"),
    ({"profile": Profile(age=500)}, "age"),
    ({"profile": Profile(max_hr=150, rest_hr=160)}, "rest_hr"),
])
def test_a_bad_sign_up_built_in_code_is_refused_alike(side, request_changes, field):
    request = SignUp(**{"email": unique_email(), "password": PASSWORD, "profile": Profile(),
                        **request_changes})
    with pytest.raises(ValidationError) as raised:
        side.accounts.sign_up(request)
    # A profile field is placed at request.age today (SignUp.from_wire decodes the profile
    # itself); request.profile.age would be more exact. Every side says the same either way.
    placed = raised.value.field
    assert placed in (field, f"request.{field}", f"request.profile.{field}")
    assert placed.startswith("request.") and placed.endswith(field.split(".")[-1])
    if "email" not in request_changes:
        with pytest.raises(Unauthorized):  # nothing was stored
            side.accounts.authenticate(request.email, request.password)


def test_a_bad_profile_built_in_code_is_refused_alike(side):
    user = side.user(age=40)
    with pytest.raises(ValidationError) as raised:
        side.accounts.update_profile(user.id, Profile(weight=-3.0))
    assert raised.value.field == "profile.weight"
    assert side.accounts.get_user(user.id) == user
