from gevent import monkey

monkey.patch_all()  # Turnout runs on gevent: patch before anything imports socket or ssl

import pytest  # noqa: E402

from bookshop import create_app  # noqa: E402


@pytest.fixture
def app(tmp_path):
    return create_app({"TESTING": True,
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.db'}",
                       "TURNOUT_RUN_DIR": str(tmp_path)})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def book(client):
    return client.post("/books", json={"title": "Dune", "author": "Frank Herbert",
                                       "year": 1965}).get_json()
