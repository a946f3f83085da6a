"""The catalog, behind a contract: the one feature the bookshop is moving to a service.

Before Turnout, the views queried `Book` directly. Putting the feature behind this
contract is the team's own work (it is what makes the switch possible), not glue: the
Protocol says what the feature does, `LocalCatalog` is the code the views used to run,
`RemoteCatalog` is the same contract over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shims.contract import describe, read, write
from shims.errors import NotFound, ValidationError
from shims.remote import RemoteClient

from bookshop.models import Book, db


@dataclass(frozen=True)
class BookInfo:
    id: int
    title: str
    author: str
    year: int | None


class Catalog(Protocol):
    @read
    def get_book(self, book_id: int) -> BookInfo: ...

    @read
    def list_books(self) -> list[BookInfo]: ...

    @write
    def add_book(self, title: str, author: str, year: int | None = None) -> BookInfo: ...


CATALOG = describe(Catalog, "catalog")


class LocalCatalog:
    def get_book(self, book_id: int) -> BookInfo:
        book = db.session.get(Book, book_id)
        if book is None:
            raise NotFound(f"no book {book_id}")
        return _info(book)

    def list_books(self) -> list[BookInfo]:
        return [_info(book) for book in db.session.scalars(db.select(Book).order_by(Book.id))]

    def add_book(self, title: str, author: str, year: int | None = None) -> BookInfo:
        for field, value in (("title", title), ("author", author)):
            if not value.strip():
                raise ValidationError(f"{field} must not be empty", field=field)
        if year is not None and not 0 < year < 3000:
            raise ValidationError("year must be from 1 to 2999", field="year")
        book = Book(title=title.strip(), author=author.strip(), year=year)
        db.session.add(book)
        db.session.commit()
        return _info(book)


class RemoteCatalog(RemoteClient):
    spec = CATALOG


def _info(book: Book) -> BookInfo:
    return BookInfo(id=book.id, title=book.title, author=book.author, year=book.year)
