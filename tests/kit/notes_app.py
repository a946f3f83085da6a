"""A small app of the kit's own for its tests: authors and their notes.

The kit's tests must not lean on Runnerly (they run where it is not installed, on the lowest
versions the kit supports), so the data-owning parts of the kit (joinable sessions, the
outbox, the mirror, stage moves, keyed writes) are tested on this app instead. It is
written as a SQLAlchemy 1.4 app is (`declarative_base`, `Column`), which 2.x runs alike:
one contract, a local implementation whose sessions the kit tracks, and a `DataSync` over
its two tables (a parent and a child, so that "parents first" means something).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import BigInteger, Column, ForeignKey, String, delete, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import declarative_base, sessionmaker

from shims import outbox
from shims.contract import describe, read, write
from shims.errors import Conflict, NotFound, TransportError
from shims.ids import new_id
from shims.sql import create_tables, make_engine
from shims.sync import Applied, Backlog, PendingChange, RowChange, RowKey
from shims.transactions import joinable_sessions

Base = declarative_base()


class Author(Base):
    __tablename__ = "authors"

    id = Column(BigInteger, primary_key=True, default=new_id)
    email = Column(String(254), unique=True, nullable=False)


class Note(Base):
    __tablename__ = "notes"

    id = Column(BigInteger, primary_key=True, default=new_id)
    author_id = Column(BigInteger, ForeignKey("authors.id"), nullable=False, index=True)
    text = Column(String(200), nullable=False)


AUTHORS, NOTE_ROWS = Author.__table__, Note.__table__
ENTITY_TABLES = {"author": AUTHORS, "note": NOTE_ROWS}
NOTES_OUTBOX = outbox.OutboxRecorder({AUTHORS: "author", NOTE_ROWS: "note"})


@dataclass(frozen=True)
class AuthorRecord:
    id: int
    email: str


@dataclass(frozen=True)
class NoteRecord:
    id: int
    author_id: int
    text: str


class Notes(Protocol):
    @read
    def list_notes(self, author_id: int) -> list[NoteRecord]: ...
    @read
    def get_note(self, author_id: int, note_id: int) -> NoteRecord: ...
    @write
    def add_author(self, email: str) -> AuthorRecord: ...
    @write
    def delete_author(self, author_id: int) -> None: ...
    @write
    def add_note(self, author_id: int, text: str) -> NoteRecord: ...
    @write
    def update_note(self, author_id: int, note_id: int, text: str) -> NoteRecord: ...
    @write
    def delete_note(self, author_id: int, note_id: int) -> None: ...


NOTES = describe(Notes, "notes")


def create_schema(engine: Engine) -> None:
    create_tables(Base.metadata, engine)
    create_tables(outbox.metadata, engine)


def make_sessions(engine: Engine) -> sessionmaker:
    """As an app wires the kit: changes recorded in the outbox, keyed writes joined."""
    return NOTES_OUTBOX.track(joinable_sessions(engine))


class LocalNotes:
    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions

    def list_notes(self, author_id: int) -> list[NoteRecord]:
        with self._sessions() as session:
            notes = session.execute(select(Note).where(Note.author_id == author_id)
                                    .order_by(Note.id)).scalars()
            return [_note(note) for note in notes]

    def get_note(self, author_id: int, note_id: int) -> NoteRecord:
        with self._sessions() as session:
            return _note(self._find(session, author_id, note_id))

    def add_author(self, email: str) -> AuthorRecord:
        try:
            with self._sessions.begin() as session:
                author = Author(email=email)
                session.add(author)
        except IntegrityError as exc:
            raise Conflict(f"{email} is taken", field="email") from exc
        return AuthorRecord(id=author.id, email=author.email)

    def delete_author(self, author_id: int) -> None:
        with self._sessions.begin() as session:
            author = session.get(Author, author_id)
            if author is None:
                raise NotFound(f"no author {author_id}")
            session.delete(author)

    def add_note(self, author_id: int, text: str) -> NoteRecord:
        with self._sessions.begin() as session:
            if session.get(Author, author_id) is None:
                raise NotFound(f"no author {author_id}", field="author_id")
            note = Note(author_id=author_id, text=text)
            session.add(note)
        return _note(note)

    def update_note(self, author_id: int, note_id: int, text: str) -> NoteRecord:
        with self._sessions.begin() as session:
            note = self._find(session, author_id, note_id)
            note.text = text
        return _note(note)

    def delete_note(self, author_id: int, note_id: int) -> None:
        with self._sessions.begin() as session:
            session.delete(self._find(session, author_id, note_id))

    @staticmethod
    def _find(session, author_id: int, note_id: int) -> Note:
        note = session.get(Note, note_id)
        if note is None or note.author_id != author_id:
            raise NotFound(f"no note {note_id} of author {author_id}")
        return note


def _note(note: Note) -> NoteRecord:
    return NoteRecord(id=note.id, author_id=note.author_id, text=note.text)


class NotesSync:
    """The `DataSync` contract (shims/sync.py) over authors and notes, as an app writes one:
    a note travels after its author, a change lands only if newer than what is held."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def export(self, keys: list[RowKey]) -> list[RowChange]:
        changes: dict[tuple[str, int], RowChange] = {}
        with self._engine.connect() as connection:
            for key in keys:
                for change in _changes(connection, key):
                    changes.setdefault((change.entity, change.id), change)
        return list(changes.values())

    def apply(self, changes: list[RowChange]) -> Applied:
        applied = 0
        try:
            with self._engine.begin() as connection:
                for change in changes:
                    applied += _apply(connection, change)
        except IntegrityError as exc:  # a note of an author this side lacks, a taken email
            raise Conflict(f"the rows do not fit this database: {exc.orig}",
                           field="rows") from exc
        return Applied(applied=applied, skipped=len(changes) - applied)

    def pending(self, limit: int) -> list[PendingChange]:
        with self._engine.connect() as connection:
            return outbox.pending(connection, limit)

    def settle(self, changes: list[PendingChange]) -> int:
        with self._engine.begin() as connection:
            return outbox.settle(connection, changes)

    def backlog(self) -> Backlog:
        with self._engine.connect() as connection:
            return outbox.backlog(connection)


def _changes(connection: Connection, key: RowKey) -> list[RowChange]:
    change = _change(connection, key.entity, key.id)
    if key.entity == "note" and change.row is not None:
        return [_change(connection, "author", change.row["author_id"]), change]
    return [change]


def _change(connection: Connection, entity: str, row_id: int) -> RowChange:
    # The version before the row, as shims/sync.py asks: a write in between leaves the row
    # newer than its version says, and it is sent again.
    version = outbox.versions(connection, entity, [row_id]).get(row_id, 0)
    table = ENTITY_TABLES[entity]
    found = connection.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return RowChange(entity=entity, id=row_id, version=version,
                     row=dict(found) if found is not None else None)


def _apply(connection: Connection, change: RowChange) -> int:
    table = ENTITY_TABLES[change.entity]
    held = outbox.versions(connection, change.entity, [change.id]).get(change.id, 0)
    if change.version <= held:
        return 0
    exists = connection.execute(select(table.c.id).where(table.c.id == change.id)).first()
    if change.row is None:
        if exists:
            connection.execute(delete(table).where(table.c.id == change.id))
    elif exists:
        connection.execute(update(table).where(table.c.id == change.id).values(**change.row))
    else:
        connection.execute(table.insert().values(**change.row))
    outbox.store_version(connection, change.entity, change.id, change.version)
    return 1


class Side:
    """One side of the notes feature (the monolith's, or the service's) on its own database."""

    def __init__(self, where: Path | str):
        url = where if isinstance(where, str) else f"sqlite:///{where}"
        self.engine = make_engine(url, pool_size=2)
        create_schema(self.engine)
        self.notes = LocalNotes(make_sessions(self.engine))
        self.sync = NotesSync(self.engine)

    def author(self, email: str) -> AuthorRecord:
        return self.notes.add_author(email)

    def note(self, author: AuthorRecord, text: str = "Tempo") -> NoteRecord:
        return self.notes.add_note(author.id, text)

    def texts(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.execute(select(NOTE_ROWS.c.text)).scalars())

    def close(self) -> None:
        self.engine.dispose()


class Flaky:
    """A DataSync whose calls can be made to fail like a dead service."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if self.down:
                raise TransportError("connection refused")
            return getattr(self.inner, name)(*args, **kwargs)
        return call
