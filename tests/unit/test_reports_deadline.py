"""Runnerly's reports service honours its caller's deadline on its reads of the data contracts
(the mechanism is the kit's: tests/kit/test_deadline.py)."""

from __future__ import annotations

from fake_pool import FakePool

from extracted.reports.app import create_app as create_reports
from shims import deadline
from shims.transport import HttpTransport

BASE = "http://data.test"
LIST_RUNS = f"{BASE}/rpc/runs/list_runs"


def test_the_reports_service_bounds_its_reads_by_the_callers_budget():
    """A caller with 300 ms left makes it give up on that read in 300 ms, and it says so to
    the next hop."""
    pool = FakePool(BASE)
    pool.post(LIST_RUNS, json={"result": []})
    reports = create_reports({"REQUEST_DEADLINE": 10.0},
                             data_transport=HttpTransport(BASE, pool=pool),
                             guard=lambda method: None)
    answered = reports.test_client().post(
        "/rpc/reports/monthly_report", json={"args": {"user_id": 3, "year": 2026, "month": 5}},
        headers={deadline.HEADER: "300"})
    assert answered.status_code == 200, answered.json
    request = pool.last_request
    assert request.timeout[1] <= 0.3
    assert int(request.headers[deadline.HEADER]) / 1000 <= 0.3
