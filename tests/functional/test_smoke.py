import os


def test_healthz_reports_the_service_the_worker_and_its_flags(web):
    body = web.get("/healthz").json
    assert (body["status"], body["service"], body["pid"]) == ("ok", "monolith", os.getpid())
    assert body["flags"]["modes"]["runs"] == "local"
    assert body["flags"]["killed"] is False
