def test_an_empty_shop_lists_no_books(client):
    assert client.get("/books").get_json() == []


def test_a_book_added_is_listed_and_shown(client, book):
    assert book["title"] == "Dune" and book["id"] > 0
    assert client.get("/books").get_json() == [book]
    assert client.get(f"/books/{book['id']}").get_json() == {"book": book, "reviews": []}


def test_books_are_listed_in_the_order_they_were_added(client, book):
    second = client.post("/books", json={"title": "Emma", "author": "Jane Austen"}).get_json()
    assert [b["title"] for b in client.get("/books").get_json()] == ["Dune", "Emma"]
    assert second["year"] is None


def test_a_missing_book_is_404(client):
    assert client.get("/books/999").status_code == 404


def test_an_empty_title_is_refused_naming_the_field(client):
    response = client.post("/books", json={"title": " ", "author": "Nobody"})
    assert response.status_code == 400 and response.get_json()["field"] == "title"


def test_a_year_that_is_not_a_number_is_refused_naming_the_field(client):
    response = client.post("/books", json={"title": "X", "author": "Y", "year": "soon"})
    assert response.status_code == 400 and response.get_json()["field"] == "year"
