"""Accounts: sign-up, login, profiles and admin user management."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from shims import fields
from shims.contract import describe, read, write
from shims.errors import ValidationError
from shims.ids import Id
from shims.limits import Limits
from shims.remote import RemoteClient

PROFILE_FIELDS = ("first_name", "last_name", "age", "weight", "max_hr", "rest_hr", "vo2max")


@dataclass(frozen=True)
class Profile:
    """The limits on each field are those `parse` enforces (and the OpenAPI shows)."""

    first_name: Annotated[str, fields.text_limits(100, required=False)] = ""
    last_name: Annotated[str, fields.text_limits(100, required=False)] = ""
    age: Annotated[int, Limits(minimum=5, maximum=120)] | None = None
    weight: Annotated[float, Limits(minimum=20, maximum=300)] | None = None
    max_hr: Annotated[int, Limits(minimum=80, maximum=250)] | None = None
    rest_hr: Annotated[int, Limits(minimum=25, maximum=120)] | None = None
    vo2max: Annotated[float, Limits(minimum=10, maximum=100)] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any], base: Profile | None = None) -> Profile:
        """Fields absent from `data` keep their value from `base` (a partial update). Every
        field is checked before any refusal, so it names all that are wrong."""
        base = base or cls()
        problems = fields.Problems()
        parsed = {
            "first_name": problems.parse(fields.text, data, "first_name", required=False,
                                         max_length=100, default=""),
            "last_name": problems.parse(fields.text, data, "last_name", required=False,
                                        max_length=100, default=""),
            "age": problems.parse(fields.integer, data, "age", required=False, minimum=5,
                                  maximum=120),
            "weight": problems.parse(fields.number, data, "weight", required=False, minimum=20,
                                     maximum=300),
            "max_hr": problems.parse(fields.integer, data, "max_hr", required=False,
                                     minimum=80, maximum=250),
            "rest_hr": problems.parse(fields.integer, data, "rest_hr", required=False,
                                      minimum=25, maximum=120),
            "vo2max": problems.parse(fields.number, data, "vo2max", required=False,
                                     minimum=10, maximum=100),
        }
        problems.raise_any()
        profile = cls(**{name: value if name in data else getattr(base, name)
                         for name, value in parsed.items()})
        if profile.max_hr is not None and profile.rest_hr is not None \
                and profile.rest_hr >= profile.max_hr:
            raise ValidationError("rest_hr must be below max_hr", field="rest_hr")
        return profile

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Profile:
        fields.only_known(data, set(PROFILE_FIELDS), "profile")
        return cls.parse(data)


@dataclass(frozen=True)
class SignUp:
    email: Annotated[str, fields.EMAIL_LIMITS]
    password: Annotated[str, fields.PASSWORD_LIMITS]
    profile: Profile = Profile()  # absent on the wire: an empty profile

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SignUp:
        problems = fields.Problems()
        problems.parse(fields.only_known, data, {"email", "password", *PROFILE_FIELDS,
                                                 "csrf_token"})
        email = problems.parse(fields.email, data)
        password = problems.parse(fields.password, data)
        profile = problems.parse(Profile.parse, data)
        problems.raise_any()
        return cls(email=email, password=password, profile=profile)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SignUp:
        fields.only_known(data, {"email", "password", "profile"}, "request")
        profile = fields.require_mapping(data.get("profile", {}), "profile")
        return cls(email=fields.email(data), password=fields.password(data),
                   profile=Profile.from_wire(profile))


@dataclass(frozen=True)
class UserRecord:
    id: Id
    email: str
    first_name: str
    last_name: str
    age: int | None
    weight: float | None
    max_hr: int | None
    rest_hr: int | None
    vo2max: float | None
    is_admin: bool
    strava_linked: bool
    created_at: dt.datetime

    @property
    def profile(self) -> Profile:
        return Profile(**{name: getattr(self, name) for name in PROFILE_FIELDS})

    @property
    def display_name(self) -> str:
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.email


@dataclass(frozen=True)
class StravaLink:
    user_id: Id
    token: str


StravaToken = Annotated[str, fields.text_limits(200)]  # as link_strava checks


class Accounts(Protocol):
    @write
    def sign_up(self, request: SignUp, is_admin: bool = False) -> UserRecord: ...
    @read(cacheable=False)  # its arguments hold a password: no client may keep them
    def authenticate(self, email: str, password: str) -> UserRecord: ...
    @read
    def get_user(self, user_id: Id) -> UserRecord: ...
    @read
    def list_users(self) -> list[UserRecord]: ...
    @write
    def update_profile(self, user_id: Id, profile: Profile) -> UserRecord: ...
    @write
    def set_admin(self, user_id: Id, is_admin: bool) -> UserRecord: ...
    @write
    def delete_user(self, user_id: Id) -> None: ...
    @write
    def link_strava(self, user_id: Id, token: StravaToken | None) -> UserRecord: ...
    @read
    def strava_links(self) -> list[StravaLink]: ...
    @read
    def strava_link(self, user_id: Id) -> StravaLink: ...


ACCOUNTS = describe(Accounts, "accounts")


class RemoteAccounts(RemoteClient):
    """The accounts contract over HTTP (or in-process WSGI), for an extracted service."""

    spec = ACCOUNTS
