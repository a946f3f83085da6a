"""Logins the server can end: one row per browser session or API token lineage.

A signed cookie or token proves who was given it, not that the login still stands. So
each carries a grant id, and a request is let in only while the grant's row exists and
has not passed its absolute expiry: logout deletes the row, "log out everywhere" deletes
every row of the runner, and renewing a token keeps its grant (and so its expiry).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from monolith.models import Grant, utcnow

SESSION, TOKEN = "session", "token"


@dataclass(frozen=True)
class LiveGrant:
    id: str
    user_id: int
    expires_at: dt.datetime  # naive UTC, as stored

    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - utcnow()).total_seconds()))


class Grants:
    def __init__(self, engine: Engine, lifetimes: dict[str, int]):
        # Plain sessions: a grant is not a contract write, so it joins no keyed transaction
        # and goes to no outbox.
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._lifetimes = lifetimes  # seconds, by kind

    def open(self, user_id: int, kind: str) -> LiveGrant:
        now = utcnow()
        grant = Grant(id=secrets.token_urlsafe(32), user_id=user_id, kind=kind, created_at=now,
                      expires_at=now + dt.timedelta(seconds=self._lifetimes[kind]))
        with self._sessions.begin() as session:
            # The runner's lapsed logins go as a new one comes: the table stays small
            # without a sweeper.
            session.execute(delete(Grant).where(Grant.user_id == user_id,
                                                Grant.expires_at <= now))
            session.add(grant)
        return LiveGrant(grant.id, user_id, grant.expires_at)

    def live(self, grant_id: object, user_id: int) -> LiveGrant | None:
        """The grant, if it still stands and belongs to `user_id`: one primary-key read."""
        if not isinstance(grant_id, str) or not grant_id:
            return None
        with self._sessions() as session:
            grant = session.get(Grant, grant_id)
            if grant is None or grant.user_id != user_id or grant.expires_at <= utcnow():
                return None
            return LiveGrant(grant.id, grant.user_id, grant.expires_at)

    def end(self, grant_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(Grant).where(Grant.id == grant_id))

    def end_all(self, user_id: int) -> int:
        """Every session and token of the runner; how many there were."""
        with self._sessions.begin() as session:
            return session.execute(delete(Grant).where(Grant.user_id == user_id)).rowcount
