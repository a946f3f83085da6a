"""Whether the guard watches each feature: switched at run time, kept beside the flags.

A feature's switch, once set (`turnout flags guard FEATURE on|off`, `PUT
/_turnout/guard/<feature>`), is a row of `turnout_guard_switches` in the flag store's
database, changed in one transaction with its audit row (`guard off -> guard on`) and a new
store version; until then the policy's `[guard] enabled` default decides.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, insert, select, update
from sqlalchemy.engine import Connection

from shims.flags.model import FlagError, validate_flag
from shims.flags.store import SqlFlagStore, utcnow
from shims.gates.config import Policy
from shims.sql import create_tables

metadata = MetaData()
switches_table = Table(
    "turnout_guard_switches", metadata,
    Column("feature", String(100), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
)


def described(enabled: bool) -> str:
    return "guard on" if enabled else "guard off"


class GuardSwitches:
    def __init__(self, store: SqlFlagStore, policy: Policy):
        self.store = store
        self.policy = policy
        self._ready = False

    def create_schema(self) -> None:
        create_tables(metadata, self.store.engine)
        self._ready = True

    def stored(self) -> dict[str, bool]:
        """The switches set at run time, by feature."""
        self._prepare()
        with self.store.engine.connect() as connection:
            return {row.feature: bool(row.enabled)
                    for row in connection.execute(select(switches_table))}

    def enabled(self) -> dict[str, bool]:
        """Every feature with a remote side: its switch, else the policy's default."""
        stored = self.stored()
        return {name: stored.get(name, self.policy.guard_of(name).enabled)
                for name, info in self.store.features.items() if info.has_remote}

    def switch(self, feature: str, enabled: bool, *, actor: str) -> bool:
        """Sets a feature's switch, audited; returns whether it was on before."""
        validate_flag(self.store.features, feature, "local")  # an unknown feature
        if not self.store.features[feature].has_remote:
            raise FlagError(f"feature {feature!r} has no remote side yet: there is nothing "
                            "for the guard to watch", field="feature")
        before = self.enabled()[feature]
        stored = feature in self.stored()

        def change(connection: Connection) -> None:
            values = {"enabled": enabled, "updated_at": utcnow(), "updated_by": actor}
            if stored:
                connection.execute(update(switches_table)
                                   .where(switches_table.c.feature == feature).values(**values))
            else:
                connection.execute(insert(switches_table).values(feature=feature, **values))

        self.store.record(actor, feature, described(before), described(enabled), change)
        return before

    def _prepare(self) -> None:
        self.store.verify()  # never create tables on a file that is not a whole flag store
        if not self._ready:
            self.create_schema()
