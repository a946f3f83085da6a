"""The bookshop: a small Flask-SQLAlchemy app, and Turnout's example of adopting the kit."""

from flask import Flask

from bookshop.config import database_uri
from bookshop.models import db
from bookshop.turnout_glue import init_turnout


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_uri()
    app.config.update(config or {})
    db.init_app(app)
    with app.app_context():
        db.create_all()
    init_turnout(app)

    from bookshop.views import bp

    app.register_blueprint(bp)
    return app
