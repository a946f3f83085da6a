"""The README's five-minute tour, where a step's promise can be kept in-process: the shadow
step (6) greps /metrics for shadow comparisons, and a comparison exists only once a read has
been answered in shadow. So the tour must read through the API in between; replayed here,
with the data service in this process as the shadow side."""

from __future__ import annotations

import re

import pytest
from webtest import TestApp

from shims.extension import add_init_hook
from shims.transport import WsgiTransport
from support import LOOPBACK, PASSWORD, ROOT, SessionTokens, basic_auth, runnerly_app
from tests.contract.support import dataservice_app

API_READ = re.compile(r"curl .*http://127\.0\.0\.1:5000(/api/\S+)")
COMPARISONS = "turnout_shadow_comparisons"


def shadow_step() -> list[str]:
    """The tour's commands from moving runs to shadow up to the grep of the comparisons."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    start = next(number for number, line in enumerate(lines) if "flags set runs shadow" in line)
    end = next(number for number in range(start, len(lines)) if COMPARISONS in lines[number])
    return lines[start:end + 1]


class DataServiceInProcess:
    """The shadow side: the monolith's runs feature reaches this data service app over WSGI,
    and each shadow finishes before its read answers, so nothing has to be waited for."""

    def __init__(self, directory) -> None:
        self.app = dataservice_app(directory)

    def transports(self, app, registry, settings):
        return {"runs": WsgiTransport(self.app, tokens=SessionTokens())}

    def built(self, app, state) -> None:
        for runner in state.shadows:
            runner.synchronous = True


@pytest.fixture
def monolith(tmp_path):
    service = DataServiceInProcess(tmp_path / "data")
    remove = add_init_hook(service)
    try:
        app = runnerly_app(tmp_path)
    finally:
        remove()
    with app.app_context():
        yield app
    service.app.extensions["turnout_engine"].dispose()


def comparisons(web) -> list[str]:
    return [line for line in web.get("/metrics").text.splitlines()
            if line.startswith(COMPARISONS)]


def test_the_shadow_step_reads_through_the_api_before_it_looks_for_comparisons(monolith,
                                                                               make_user):
    steps = shadow_step()
    reads = [found[1] for line in steps[1:-1] if (found := API_READ.search(line))]
    assert reads, f"nothing is read between these steps, so the grep prints nothing: {steps}"

    web = TestApp(monolith, extra_environ=LOOPBACK)
    admin = make_user("demo@example.com", admin=True)
    web.put_json("/_turnout/flags/runs", {"mode": "shadow", "force": True, "reason": "tour"},
                 headers=basic_auth(admin.email))
    assert comparisons(web) == []  # what the grep found before the tour read first
    token = web.post("/api/tokens", headers=basic_auth(admin.email, PASSWORD)).json["token"]
    for path in reads:
        web.get(path, headers={"Authorization": f"Bearer {token}"})
    assert any('feature="runs"' in line for line in comparisons(web)), web.get("/metrics").text
