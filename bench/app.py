"""Benchmark-only WSGI app: the real Runnerly monolith plus a few unauthenticated routes that
compare like with like (never part of the product).

    /bench/router/runs       features().runs.list_runs(...): the product's Router, which follows
                             the `runs` flag (local, remote, shadow...)
    /bench/direct/runs       the same view calling a LocalRuns instance directly (B1 baseline)
    /bench/handwritten/runs  the same view calling the data service with a hand-written
                             requests.Session post (B2 baseline)

All three take the same user and month and answer the same JSON. The monolith's wiring is the
product's own, except that its service-to-service TokenSource is a static token made by the
benchmark (BENCH_TOKEN) instead of one fetched from a token dealer; the hand-written call sends
the very same header.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

import shims.extension  # noqa: E402
from monolith.runs.service import LocalRuns  # noqa: E402
from monolith.web import json_response  # noqa: E402
from shims.logs import configure as configure_logging  # noqa: E402


class StaticTokens:
    """A TokenSource (shims/transport.py) with one fixed dealer-style token."""

    def __init__(self, token: str):
        self._headers = {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        return self._headers

    def invalidate(self) -> None:
        pass


TOKENS = StaticTokens(os.environ["BENCH_TOKEN"])
# the only substitution: the composition root's token source
shims.extension.client_tokens = lambda settings, audience: TOKENS

from monolith.app import create_app  # noqa: E402
from monolith.db import make_sessions  # noqa: E402
from shims.extension import EXTENSION_KEY  # noqa: E402

configure_logging()
app = create_app()
app.extensions[EXTENSION_KEY].start_appliers()  # as monolith/wsgi.py does
USER_ID = int(os.environ["BENCH_USER_ID"])
YEAR, MONTH = 2024, 3
DIRECT = LocalRuns(make_sessions(app.extensions["runnerly_engine"]))
DATA_URL = app.config["DATASERVICE_URL"].rstrip("/") + "/rpc/runs/list_runs"
SESSION = requests.Session()
SESSION.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=200, max_retries=0))


def _answer(runs):
    return json_response({"year": YEAR, "month": MONTH, "runs": runs})


@app.get("/bench/router/runs")
def router_runs():
    return _answer(app.extensions[EXTENSION_KEY].routed.runs.list_runs(USER_ID, YEAR, MONTH))


@app.get("/bench/direct/runs")
def direct_runs():
    return _answer(DIRECT.list_runs(USER_ID, YEAR, MONTH))


@app.get("/bench/handwritten/runs")
def handwritten_runs():
    response = SESSION.post(DATA_URL, json={"args": {"user_id": USER_ID, "year": YEAR,
                                                     "month": MONTH}},
                            headers=TOKENS.headers(), timeout=(0.5, 5.0))
    response.raise_for_status()
    return _answer(response.json()["result"])
