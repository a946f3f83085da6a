"""One request, one trace, across the real stack under circusd (issue 11).

A monthly report with the reports feature and the runs feature both `remote` crosses three
processes: the monolith calls the reports service, which reads the runner's runs back through
the monolith's `/rpc` (its data contracts, routed), which the monolith answers from the data
service. The first calls also fetch service tokens from the token dealer. Every process
exports its spans over OTLP/HTTP (OTEL_TRACES_EXPORTER=otlp) to a collector this test runs,
and writes JSON log lines: the request's trace id must be in the spans of every one of them
and in each one's log file.
"""

from __future__ import annotations

import json
import secrets

import pytest
import requests
from otlp_collector import Collector
from support import eventually
from test_faults import set_flags

from scripts.demo_data import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = pytest.mark.integration

# The processes' OTLP settings; the collector's address is added when it listens. Batches
# every 100 ms, so the spans arrive while the test waits, not at the default 5 s.
STACK_ENV = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "100"}
CROSSED = ("monolith", "reports", "dataservice", "tokendealer")
SERVED_RPC = "POST /rpc/<contract>/<method_name>"


@pytest.fixture(scope="module")
def collector():
    with Collector() as running:
        STACK_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"] = running.url
        yield running


@pytest.fixture(scope="module")
def stack(collector, stack):
    """The conftest's stack, started once the collector listens (its STACK_ENV names it)."""
    return stack


def traced_lines(stack, process: str, trace_id: str) -> list[dict]:
    """The process's log lines of this trace; each must be one JSON object."""
    text = (stack.run_dir / "logs" / f"{process}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if trace_id in line]


def test_one_report_request_is_one_trace_in_every_process_it_crosses(stack, collector):
    set_flags(stack, ("runs", "remote"), ("reports", "remote"))
    trace_id = secrets.token_hex(16)
    response = requests.get(
        f"{stack.monolith}/api/reports/monthly", params={"year": 2026, "month": 11},
        auth=(DEMO_EMAIL, DEMO_PASSWORD), timeout=30,
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert response.status_code == 200, response.text
    assert "reports.monthly_report=remote" in response.headers["X-Turnout-Route"]

    def served_rpc() -> set[str]:
        return {span.service for span in collector.of_trace(trace_id)
                if span.name == SERVED_RPC}

    # reports' /rpc, the monolith's /rpc called back by reports, the data service's /rpc;
    # each process exports in batches of its own, so they arrive in any order.
    eventually(lambda: served_rpc() == {"reports", "monolith", "dataservice"}
               and {span.service for span in collector.of_trace(trace_id)} >= set(CROSSED),
               f"spans of trace {trace_id} from {CROSSED}", 20)
    spans = collector.of_trace(trace_id)
    by_id = {span.span_id: span for span in spans}
    # Each served /rpc is a child of a call the process before it made: only the
    # traceparent that call sent can say so.
    for span in (span for span in spans if span.name == SERVED_RPC):
        caller = by_id[span.parent_span_id]
        assert caller.name.startswith("POST /rpc/") and caller.service != span.service
    route = next(span for span in spans if span.name == "turnout runs.list_runs")
    assert (route.service, route.attributes["turnout.mode"]) == ("monolith", "remote")

    for process in CROSSED:
        served_lines = [line for line in traced_lines(stack, process, trace_id)
                        if line["event"] == "request_served"]
        assert served_lines, f"no request_served line of trace {trace_id} in {process}.log"
        assert all(line["trace_id"] == trace_id for line in served_lines)
