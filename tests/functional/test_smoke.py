import os


def test_healthz_reports_the_service_the_worker_and_its_flags(web):
    body = web.get("/healthz").json
    assert (body["status"], body["service"], body["pid"]) == ("ok", "monolith", os.getpid())
    assert body["flags"]["modes"]["runs"] == "local"
    assert body["flags"]["killed"] is False


def test_favicon_is_a_small_real_icon_browsers_may_keep_for_a_day(web):
    icon = web.get("/favicon.ico")
    assert icon.content_type == "image/vnd.microsoft.icon"
    assert icon.body[:4] == b"\0\0\1\0"  # an ICO file's header: reserved 0, type 1 (icon)
    assert int.from_bytes(icon.body[4:6], "little") >= 1 and len(icon.body) < 4096
    assert "public" in icon.headers["Cache-Control"]
    assert "max-age=86400" in icon.headers["Cache-Control"]
    again = web.get("/favicon.ico", headers={"If-None-Match": icon.headers["ETag"]}, status=304)
    assert again.body == b""


def test_every_page_links_the_icon(web):
    assert '<link rel="icon" href="/favicon.ico"' in web.get("/").text
    assert '<link rel="icon" href="/favicon.ico"' in web.get("/login").text
