"""schemathesis against the OpenAPI document of every service's `/rpc` and the monolith's.

Each operation gets positive cases (valid by the document: the server must accept them, or
answer a contract outcome such as 404/409) and negative cases (the document says invalid:
the server must refuse them), with every schemathesis check on, in process over WSGI, with
a valid service token. Seeded and small, so CI is stable and quick: the document and the
server agree because the limits come from one place (shims/limits.py), and these runs
prove it operation by operation.

schemathesis is a pinned dev dependency; pytest.ini keeps its plugin (and anyio's) from
importing ssl before gevent patches, so it is driven through its Python API here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from contracts.accounts import ACCOUNTS
from contracts.runs import RUNS
from contract.support import dataservice_app, monolith_app
from extracted.reports.app import create_app as create_reports
from extracted.stravaimport.app import create_app as create_stravaimport
from shims import idempotency
from shims.transport import WsgiTransport
from support import SessionTokens

EXAMPLES = 12  # per operation and mode: ~60 operations x 2 modes stay within a minute or two
# Checks that need a sequence of calls (stateful links) or report timings, not answers.
STATEFUL = {"use_after_free", "ensure_resource_availability", "max_response_time"}


def every_check():
    load_all_checks()
    return [check for check in CHECKS.get_all()
            if getattr(check, "__name__", "") not in STATEFUL]


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    data = dataservice_app(tmp / "data")
    monolith = monolith_app(tmp / "monolith")
    tokens = SessionTokens()
    config = {"RUN_DIR": str(tmp), "STRAVA_URL": "http://127.0.0.1:9"}  # no Strava: 502s
    apps = {
        "dataservice": data,
        "reports": create_reports(config, data_transport=WsgiTransport(data, tokens=tokens)),
        "stravaimport": create_stravaimport(config,
                                            data_transport=WsgiTransport(data, tokens=tokens)),
        "monolith": monolith,
    }
    yield apps
    data.extensions["turnout_engine"].dispose()


def _schema(name: str, app):
    """The document each app serves: a service's /openapi.json, the monolith's
    /rpc/openapi.json (its /rpc serves the routed accounts and runs contracts)."""
    path = "/rpc/openapi.json" if name == "monolith" else "/openapi.json"
    return schemathesis.openapi.from_wsgi(path, app)


def _operations():
    """(app name, path) of every operation, read from the documents themselves."""
    from shims.openapi import openapi_document as document
    from contracts.reports import REPORTS
    from contracts.strava import STRAVA
    from shims.sync import SYNC

    specs = {"dataservice": [ACCOUNTS, RUNS, SYNC], "reports": [REPORTS],
             "stravaimport": [STRAVA], "monolith": [ACCOUNTS, RUNS]}
    return [pytest.param(name, path, mode)
            for name, contract_specs in specs.items()
            for path in document(name, "1", contract_specs)["paths"] if path.startswith("/rpc/")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("name", "path", "mode"), _operations(),
                         ids=lambda value: getattr(value, "value", value))
def test_the_server_keeps_its_document(apps, name, path, mode):
    operation = _schema(name, apps[name])[path]["POST"]
    checks = every_check()
    # identity: schemathesis's WSGI client does not inflate a gzip answer as HTTP clients do
    headers = {**SessionTokens().headers(), "Accept-Encoding": "identity"}

    @seed(20261129)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        if mode is GenerationMode.POSITIVE and idempotency.HEADER in (case.headers or {}):
            # A valid key, but a new one: the same key with other arguments is refused
            # (422) by design, and schemathesis draws keys from a small pattern space.
            case.headers[idempotency.HEADER] = idempotency.fresh()
        case.call_and_validate(headers=headers, checks=checks)

    run()


@pytest.mark.parametrize("name", ["dataservice", "reports", "stravaimport", "monolith"])
def test_a_wrong_method_is_a_405_saying_allow(apps, name):
    client = apps[name].test_client()
    path = "/rpc/runs/get_run" if name != "reports" else "/rpc/reports/monthly_report"
    if name == "stravaimport":
        path = "/rpc/strava/import_user"
    response = client.get(path, headers=SessionTokens().headers())
    assert response.status_code == 405
    assert response.headers["Allow"].split(", ") and "POST" in response.headers["Allow"]
    assert response.get_json()["error"] == "method_not_allowed"
