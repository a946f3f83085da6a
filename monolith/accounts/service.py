"""LocalAccounts: the monolith's own implementation of the Accounts contract."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from monolith.accounts.passwords import check_password, hash_password
from monolith.models import User
from contracts import possible_id
from contracts.accounts import PROFILE_FIELDS, Profile, SignUp, StravaLink, UserRecord
from shims.errors import Conflict, NotFound, Unauthorized, ValidationError
from shims.wire import checked

# One answer for a wrong password and an unknown email (no account enumeration by the
# message; passwords.check_password makes them cost the same, too).
WRONG_CREDENTIALS = "email or password is wrong"
# Sign-up cannot hide that an email is taken (the account is not created), but it need not
# announce it: the same words whoever asks, and the monolith throttles the answers.
EMAIL_UNAVAILABLE = "this email cannot be used for a new account; if it is yours, log in"


def user_record(user: User) -> UserRecord:
    return UserRecord(id=user.id, email=user.email, first_name=user.first_name,
                      last_name=user.last_name, age=user.age, weight=user.weight,
                      max_hr=user.max_hr, rest_hr=user.rest_hr, vo2max=user.vo2max,
                      is_admin=user.is_admin, strava_linked=bool(user.strava_token),
                      created_at=user.created_at)


class LocalAccounts:
    def __init__(self, sessions: sessionmaker, *, hash_method: str = "scrypt"):
        self._sessions = sessions
        self._hash_method = hash_method

    def sign_up(self, request: SignUp, is_admin: bool = False) -> UserRecord:
        request = checked(SignUp, request, "request")
        # Hashed before this session's transaction: scrypt's ~100 ms of CPU need not run
        # inside it. (A keyed write's outer transaction still holds SQLite's write lock
        # through it: shims/outcomes.py takes the lock at BEGIN.)
        # On a worker thread under gevent (passwords.py): other greenlets run meanwhile.
        password_hash = hash_password(request.password, self._hash_method)
        with self._sessions.begin() as session:
            if session.scalar(select(User.id).where(User.email == request.email)):
                raise Conflict(EMAIL_UNAVAILABLE, field="email")
            user = User(email=request.email, is_admin=is_admin, password_hash=password_hash,
                        **_profile_columns(request.profile))
            session.add(user)
            try:
                session.flush()
            except IntegrityError as exc:  # a concurrent sign-up won the race
                raise Conflict(EMAIL_UNAVAILABLE, field="email") from exc
            return user_record(user)

    def authenticate(self, email: str, password: str) -> UserRecord:
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.email == email.strip().lower()))
            record = user_record(user) if user else None
            stored = user.password_hash if user else None
        # Outside the session: no pooled connection is held while the hash is checked.
        if not check_password(stored, password, self._hash_method) or record is None:
            raise Unauthorized(WRONG_CREDENTIALS)
        return record

    def get_user(self, user_id: int) -> UserRecord:
        with self._sessions() as session:
            return user_record(_load(session, user_id))

    def list_users(self) -> list[UserRecord]:
        with self._sessions() as session:
            return [user_record(u) for u in session.scalars(select(User).order_by(User.id))]

    def update_profile(self, user_id: int, profile: Profile) -> UserRecord:
        profile = checked(Profile, profile, "profile")
        with self._sessions.begin() as session:
            user = _load(session, user_id)
            for name, value in _profile_columns(profile).items():
                setattr(user, name, value)
            return user_record(user)

    def set_admin(self, user_id: int, is_admin: bool) -> UserRecord:
        with self._sessions.begin() as session:
            user = _load(session, user_id)
            if user.is_admin and not is_admin:
                _refuse_removing_last_admin(session)
            user.is_admin = is_admin
            return user_record(user)

    def delete_user(self, user_id: int) -> None:
        with self._sessions.begin() as session:
            user = _load(session, user_id)
            if user.is_admin:
                _refuse_removing_last_admin(session)
            session.delete(user)

    def link_strava(self, user_id: int, token: str | None) -> UserRecord:
        if token is not None and (not token.strip() or len(token) > 200):
            raise ValidationError("token must be 1 to 200 characters", field="token")
        with self._sessions.begin() as session:
            user = _load(session, user_id)
            user.strava_token = token.strip() if token else None
            return user_record(user)

    def strava_links(self) -> list[StravaLink]:
        with self._sessions() as session:
            rows = session.execute(select(User.id, User.strava_token)
                                   .where(User.strava_token.is_not(None)).order_by(User.id))
            return [StravaLink(user_id=row.id, token=row.strava_token) for row in rows]

    def strava_link(self, user_id: int) -> StravaLink:
        with self._sessions() as session:
            user = _load(session, user_id)
            if not user.strava_token:
                raise NotFound(f"user {user_id} has not linked a Strava account",
                               field="strava_token")
            return StravaLink(user_id=user.id, token=user.strava_token)


def _profile_columns(profile: Profile) -> dict:
    return {name: getattr(profile, name) for name in PROFILE_FIELDS}


def _load(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if possible_id(user_id) else None
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _refuse_removing_last_admin(session: Session) -> None:
    admins = session.scalar(select(func.count()).select_from(User).where(User.is_admin))
    if admins <= 1:
        raise Conflict("this is the last admin; make another user admin first")
