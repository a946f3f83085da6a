def test_healthz(web):
    assert web.get("/healthz").json == {"status": "ok", "service": "monolith"}
