import os


def test_healthz_reports_the_service_and_the_worker(web):
    assert web.get("/healthz").json == {"status": "ok", "service": "monolith",
                                        "pid": os.getpid()}
