"""Turnout's glue for the bookshop: the feature it routes, and the call that wires it."""

from shims.extension import Turnout, routed
from shims.registry import Binding, Feature, Registry

from bookshop.catalog import CATALOG, LocalCatalog, RemoteCatalog
from bookshop.config import database_uri
from bookshop.models import db


def _on_the_bookshop_database(app):
    """The catalog service starts on the bookshop's own database: its first step moves
    code, not data."""
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", database_uri())
    db.init_app(app)


REGISTRY = Registry(
    [Feature("catalog", service="catalog", url="http://127.0.0.1:5110",
             bindings=[Binding(CATALOG, local=lambda r: LocalCatalog(),
                               remote=RemoteCatalog)])],
    service_setup=_on_the_bookshop_database,
)


def init_turnout(app):
    Turnout(app, REGISTRY)


def catalog():
    return routed().catalog
