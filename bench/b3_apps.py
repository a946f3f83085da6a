"""Small WSGI apps for B3 and B4 (benchmark only).

`slow`: a stand-in service that answers every POST after BENCH_SLOW_DELAY seconds with the JSON in
BENCH_SLOW_BODY_FILE (default {"result": []}); GET /healthz answers at once. Run under a gevent
worker, which patches time.sleep.

`front`: a monolith-like Flask endpoint, GET /front/runs, calling that service through the
product's remote client (RemoteRuns over HttpTransport), one pooled transport per process.
It does not patch gevent itself, so the same module runs under `-k sync` and `-k gevent`.
"""

from __future__ import annotations

import json
import os
import time

_BODY = b'{"result": []}'
if os.environ.get("BENCH_SLOW_BODY_FILE"):
    with open(os.environ["BENCH_SLOW_BODY_FILE"], "rb") as handle:
        _BODY = handle.read()
_DELAY = float(os.environ.get("BENCH_SLOW_DELAY", "0.05"))


def slow(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        time.sleep(_DELAY)
        body = _BODY
    else:
        body = b'{"status": "ok"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _front():
    from flask import Flask, Response

    from contracts.runs import RemoteRuns
    from shims.transport import HttpTransport
    from shims.wire import to_wire

    app = Flask("bench-front")
    url = os.environ.get("BENCH_SERVICE_URL", "http://127.0.0.1:9")
    remote = RemoteRuns(HttpTransport(url, connect_timeout=1.0, read_timeout=30.0,
                                      pool_size=250))

    @app.get("/front/runs")
    def runs():
        result = remote.list_runs(1, 2024, 3)
        return Response(json.dumps({"runs": to_wire(result)}), mimetype="application/json")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "pid": os.getpid()}

    return app


front = _front() if os.environ.get("BENCH_FRONT") else None
