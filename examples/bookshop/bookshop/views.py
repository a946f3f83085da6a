"""The bookshop's JSON views. Books come from the catalog feature, reviews stay here."""

from dataclasses import asdict

from flask import Blueprint, abort, jsonify, request

from bookshop.models import Review, db
from bookshop.turnout_glue import catalog
from shims.errors import NotFound, ValidationError

bp = Blueprint("shop", __name__)


@bp.get("/books")
def list_books():
    return jsonify([asdict(book) for book in catalog().list_books()])


@bp.post("/books")
def add_book():
    data = request.get_json(silent=True) or {}
    try:
        book = catalog().add_book(str(data.get("title", "")), str(data.get("author", "")),
                                  _year(data.get("year")))
    except ValidationError as error:
        return jsonify(error=error.message, field=error.field), 400
    return jsonify(asdict(book)), 201


@bp.get("/books/<int:book_id>")
def show_book(book_id: int):
    book = _book_or_404(book_id)
    reviews = db.session.scalars(db.select(Review).filter_by(book_id=book_id)).all()
    return jsonify(book=asdict(book),
                   reviews=[{"stars": r.stars, "text": r.text} for r in reviews])


@bp.post("/books/<int:book_id>/reviews")
def add_review(book_id: int):
    _book_or_404(book_id)
    data = request.get_json(silent=True) or {}
    stars = data.get("stars")
    if not isinstance(stars, int) or not 1 <= stars <= 5:
        return jsonify(error="stars must be a whole number from 1 to 5", field="stars"), 400
    db.session.add(Review(book_id=book_id, stars=stars, text=str(data.get("text", ""))))
    db.session.commit()
    return jsonify(ok=True), 201


def _book_or_404(book_id: int):
    try:
        return catalog().get_book(book_id)
    except NotFound:
        abort(404)


def _year(value):
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError("year must be a whole number", field="year") from None
