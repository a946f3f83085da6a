def test_a_review_shows_with_its_book(client, book):
    response = client.post(f"/books/{book['id']}/reviews", json={"stars": 5, "text": "Vast."})
    assert response.status_code == 201
    shown = client.get(f"/books/{book['id']}").get_json()
    assert shown["reviews"] == [{"stars": 5, "text": "Vast."}]


def test_a_review_of_a_missing_book_is_404(client):
    assert client.post("/books/42/reviews", json={"stars": 3}).status_code == 404


def test_stars_out_of_range_are_refused_naming_the_field(client, book):
    response = client.post(f"/books/{book['id']}/reviews", json={"stars": 9})
    assert response.status_code == 400 and response.get_json()["field"] == "stars"
