"""The outcome of each keyed write, recorded in the write's own transaction, and replayed.

`OutcomeStore` keeps key -> (fingerprint, status, body) in `turnout_idempotency`, on the
database the writes go to, for `ttl` seconds (24 h by default, as Stripe does); rows past
it are ignored at once and deleted every few minutes by whichever worker writes.

`once(key, fingerprint, work)` runs a write at most once per key:

1. a key recorded with the same fingerprint answers its outcome, running nothing; with
   another fingerprint it is refused: `IdempotencyKeyReused` (422), naming the header;
2. otherwise, in ONE transaction: claim the key (insert its row), run `work` with every
   joinable session joined to that transaction (shims/transactions.py), store the outcome
   in the row, commit. A crash before the commit (a SIGKILL, say) rolls back the write
   with its claim, so a retry runs it afresh; after the commit a retry finds the outcome.
   A 5xx is not an outcome: it is rolled back and raised, so a retry runs again.
3. A concurrent repeat of a key in flight WAITS, it is not answered 409 "in progress":
   its claim needs the row the first transaction holds uncommitted (PostgreSQL: that row's
   lock; SQLite: the write lock BEGIN IMMEDIATE takes), so it goes on once the first
   commits, and finds its outcome, or rolls back, and runs itself. No claim is ever
   committed without its outcome, so no "in progress" row outlives a crash and needs a
   lease, and the caller needs no second retry loop. The wait lasts the first write's
   transaction, which never spans a network call.

`Keyed(implementation, spec, store)` is an implementation whose writes go through `once`
with their key from the request's scope (shims/idempotency.py); the outcome stored is
what the service would answer on the wire (`{"result": ...}` or the contract error), so a
replay is decoded exactly as the remote client decodes an answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, Text, delete, insert,
                        select, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from shims import idempotency
from shims.contract import ContractSpec, MethodSpec
from shims.errors import (Conflict, ContractError, IdempotencyKeyReused,
                          contract_error_from)
from shims.sql import create_tables, lock_for_writing
from shims.transactions import joined, joined_to
from shims.wire import from_wire, to_wire

log = logging.getLogger("turnout.outcomes")
DEFAULTS = {"IDEMPOTENCY_TTL": 86400}  # seconds an outcome is kept and replayed

metadata = MetaData()
OUTCOMES = Table(
    "turnout_idempotency", metadata,
    Column("key", String(idempotency.MAX_LENGTH), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=True),  # None only inside the claiming transaction
    Column("body", Text, nullable=True),
    Column("content_type", String(100), nullable=True),
    Column("created_at", Float, nullable=False, index=True),  # epoch seconds
)


@dataclass(frozen=True)
class Outcome:
    status: int
    body: str
    content_type: str | None = "application/json"


class _Taken(Exception):
    """Another transaction committed this key first."""


class OutcomeStore:
    def __init__(self, engine: Engine, *, ttl: float = DEFAULTS["IDEMPOTENCY_TTL"],
                 prune_every: float = 300.0, clock: Callable[[], float] = time.time):
        self.engine = engine
        self._ttl = ttl
        self._prune_every = prune_every
        self._clock = clock  # wall time: every process of the service shares the rows
        self._pruned_at = clock()

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)

    def lookup(self, key: str, fingerprint: str) -> Outcome | None:
        """The outcome recorded under `key`, or None; refused if asked with other arguments."""
        with self.engine.connect() as connection:
            row = connection.execute(select(OUTCOMES).where(
                OUTCOMES.c.key == key, OUTCOMES.c.created_at >= self._cutoff())).first()
        if row is None or row.status is None:
            return None
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"this {idempotency.HEADER} was already used for a different request; send "
                "a new key for a new request", field=idempotency.HEADER)
        return Outcome(row.status, row.body, row.content_type)

    def once(self, key: str, fingerprint: str, work: Callable[[], Outcome]) -> Outcome:
        """`work`'s outcome, run at most once per key, committed with its record."""
        recorded = self.lookup(key, fingerprint)
        if recorded is not None:
            return recorded
        try:
            with self.engine.connect() as connection, connection.begin() as transaction:
                lock_for_writing(connection)
                self._claim(connection, key, fingerprint)
                with joined(connection):
                    outcome = work()
                if outcome.status >= 500:
                    transaction.rollback()
                    return outcome
                connection.execute(update(OUTCOMES).where(OUTCOMES.c.key == key).values(
                    status=outcome.status, body=outcome.body,
                    content_type=outcome.content_type))
        except _Taken:
            return self._winner(key, fingerprint)
        self._prune_now_and_then()
        return outcome

    def record(self, key: str, fingerprint: str, outcome: Outcome) -> None:
        """Keeps an outcome produced elsewhere (an API response, whose own writes were keyed
        and committed by `once`); the first of two concurrent records wins."""
        try:
            with self.engine.begin() as connection:
                self._claim(connection, key, fingerprint, outcome)
        except _Taken:
            return
        self._prune_now_and_then()

    def prune(self) -> int:
        with self.engine.begin() as connection:
            return connection.execute(delete(OUTCOMES).where(
                OUTCOMES.c.created_at < self._cutoff())).rowcount

    def _claim(self, connection: Connection, key: str, fingerprint: str,
               outcome: Outcome | None = None) -> None:
        connection.execute(delete(OUTCOMES).where(OUTCOMES.c.key == key,
                                                  OUTCOMES.c.created_at < self._cutoff()))
        values = {"key": key, "fingerprint": fingerprint, "created_at": self._clock()}
        if outcome is not None:
            values.update(status=outcome.status, body=outcome.body,
                          content_type=outcome.content_type)
        try:
            connection.execute(insert(OUTCOMES).values(**values))
        except IntegrityError as exc:
            raise _Taken from exc

    def _winner(self, key: str, fingerprint: str) -> Outcome:
        recorded = self.lookup(key, fingerprint)
        if recorded is None:  # pruned in between: vanishingly rare, and safe to say so
            raise Conflict(f"a request with this {idempotency.HEADER} is in progress; retry it",
                           field=idempotency.HEADER)
        return recorded

    def _cutoff(self) -> float:
        return self._clock() - self._ttl

    def _prune_now_and_then(self) -> None:
        if self._clock() - self._pruned_at < self._prune_every:
            return
        self._pruned_at = self._clock()
        try:
            self.prune()
        except SQLAlchemyError:  # never fail a write for housekeeping; next time, then
            log.warning("pruning old idempotency outcomes failed", exc_info=True)


class Keyed:
    """`implementation` with its writes run through `store.once` under the request's keys;
    reads, and writes outside any key scope, go straight through."""

    def __init__(self, implementation: Any, spec: ContractSpec, store: OutcomeStore):
        self._implementation = implementation
        self._store = store
        for method in spec.methods.values():
            if not method.is_read:
                setattr(self, method.name, self._keyed(method))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._implementation, name)

    def _keyed(self, method: MethodSpec) -> Callable[..., Any]:
        run = getattr(self._implementation, method.name)

        def call(*args: Any, **kwargs: Any) -> Any:
            arguments = method.bind(args, kwargs)
            key = idempotency.for_call(method, arguments)
            if key is None or joined_to(self._store.engine):  # inside another keyed call
                return run(**arguments)
            outcome = self._store.once(key, idempotency.fingerprint(method, arguments),
                                       lambda: _outcome_of(run, arguments))
            return _answer(method, outcome)

        call.__name__ = method.name
        return call


def _outcome_of(run: Callable[..., Any], arguments: dict[str, Any]) -> Outcome:
    """The call's answer as the wire carries it; contract errors are outcomes too."""
    try:
        result = run(**arguments)
    except ContractError as error:
        if error.status >= 500:  # Strava failing (502) says nothing lasting: not kept
            raise
        return Outcome(error.status, json.dumps(error.to_dict()))
    return Outcome(200, json.dumps({"result": to_wire(result)}, separators=(",", ":")))


def _answer(method: MethodSpec, outcome: Outcome) -> Any:
    body = json.loads(outcome.body)
    if outcome.status == 200:
        return from_wire(method.returns, body["result"], "result")
    error = contract_error_from(body, outcome.status)
    if error is None:  # only contract errors are kept (_outcome_of)
        raise ValueError(f"a kept outcome that is not a contract error: {outcome.status}")
    raise error
