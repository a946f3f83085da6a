"""B9: the monolith's CPU per remote call through the kit's client, against a raw
`http.client` keep-alive call that sends and reads the same bytes.

One client process (gevent-patched, as a monolith worker is) pinned to CPU 0 calls the real
data service (1 gevent worker) pinned to CPU 1. The subject is `RemoteRuns.list_runs` built
as the monolith builds it (`transport_for` and `client_options` over the monolith's settings):
a dealer token from `ClientCredentials` (fetched once from an in-process stand-in dealer, then
cached), the request's deadline in `X-Turnout-Deadline-Ms`, a `traceparent` from an unsampled
server span (the monolith's default without an exporter), and the ETag read cache, so a
repeated read comes back a bodyless 304. The baseline sends the very bytes the kit sent
(captured from the kit's connection after warm-up: same request line, headers and body) over
one `http.client.HTTPConnection` and reads the answer. Both alternate sample by sample in the
same process; each sample is the process's CPU time (`time.process_time`) over a fixed number
of calls, divided by it. A second, informational pair does the same with the read cache off:
every call then reads and decodes the 200 with its ten runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.common import markdown_table, med_range, spread, table
from bench.servers import ROOT, Server

ID = "B9"
TARGET = 1.5
CLIENT_CPU, SERVER_CPU = 0, 1


def run(ctx) -> dict:
    setup = ctx.setup()
    try:
        data = setup.start(Server("b9-dataservice", "extracted.dataservice.wsgi:app",
                                  setup.dataservice_env(), setup.run_dir / "logs",
                                  cpu=SERVER_CPU))
        measured = client_in_subprocess(data.url, setup.user_id, ctx.tokens.token, ctx.quick)
    finally:
        setup.stop_all()
    cached, uncached = measured["cached"], measured["uncached"]
    ratio = cached["kit_us"]["median"] / cached["raw_us"]["median"]
    result = {
        "id": ID, "title": "client CPU per remote call: kit vs raw http.client",
        "method": f"{measured['samples']} alternating samples x {measured['calls']} calls, one "
                  f"gevent client process on CPU {CLIENT_CPU}, data service (1 gevent worker) "
                  f"on CPU {SERVER_CPU}; client process CPU time per call",
        "cached": cached, "uncached": uncached, "ratio": round(ratio, 4),
        "uncached_ratio": round(uncached["kit_us"]["median"] / uncached["raw_us"]["median"], 4),
        "request_bytes": measured["request_bytes"], "status": measured["status"],
        "baseline_desc": f"raw http.client, {cached['raw_us']['median']:.0f} us/call",
        "measured": f"kit {cached['kit_us']['median']:.0f} us/call ({ratio:.2f}x)",
        "target": f"client CPU <= {TARGET} x baseline", "pass": ratio <= TARGET,
    }
    result["table"] = render(result)
    return result


def _rows(r: dict) -> list[list[str]]:
    rows = []
    for label, pair in (("read cache on (production): 304", r["cached"]),
                        ("read cache off: 200, ten runs decoded", r["uncached"])):
        rows.append([label, med_range(pair["raw_us"]), med_range(pair["kit_us"]),
                     med_range(pair["pair_ratios"], 2)])
    return rows


HEADER = ["call", "raw http.client us/call", "kit us/call", "kit / raw"]


def render(r: dict) -> str:
    return "\n".join([table(f"B9 ({r['method']})", HEADER, _rows(r)),
                      f"ratio {r['ratio']:.3f}, target <= {TARGET}: "
                      f"{'PASS' if r['pass'] else 'FAIL'} (cache off: {r['uncached_ratio']:.3f}, "
                      f"informational); request {r['request_bytes']} bytes"])


def markdown(r: dict) -> str:
    return markdown_table([h.replace("us/call", "µs/call") for h in HEADER], _rows(r)) + \
        (f"\n\nRatio {r['ratio']:.3f} with the read cache as in production (target ≤ {TARGET}); "
         f"{r['uncached_ratio']:.3f} with it off. The kit's request is {r['request_bytes']} "
         f"bytes.")


def client_in_subprocess(url: str, user_id: int, token: str, quick: bool) -> dict:
    command = [sys.executable, "-m", "bench.b9_client_overhead", "--client", url, str(user_id),
               "quick" if quick else "full"]
    if (os.cpu_count() or 1) > CLIENT_CPU:
        command = ["taskset", "-c", str(CLIENT_CPU), *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURNOUT_", "OTEL_"))}
    env.update(PYTHONPATH=str(ROOT), BENCH_TOKEN=token)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"B9 client failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the client process

class _StandInDealer:
    """The session ClientCredentials posts its token request to: answers the run's token
    (a real dealer would be a process of its own; it is asked once, then the token is
    cached, which is what B9 measures)."""

    def __init__(self, token: str):
        self._token = token

    def post(self, *_args, **_kwargs):
        token = self._token

        class Answer:
            status_code = 200

            @staticmethod
            def json():
                return {"access_token": token, "token_type": "Bearer", "expires_in": 6 * 3600}

        return Answer()


def _kit_client(url: str, cache: bool):
    """RemoteRuns as the monolith's extension builds it, over its settings."""
    from contracts.runs import RemoteRuns
    from monolith.config import load_config
    from shims.auth import ClientCredentials
    from shims.remote import client_options
    from shims.transport import transport_for

    settings = load_config(environ={"TURNOUT_DATASERVICE_URL": url})
    tokens = ClientCredentials(settings["TOKEN_URL"], "monolith", "bench-secret",
                               audience="dataservice",
                               session=_StandInDealer(os.environ["BENCH_TOKEN"]))
    options = client_options(settings)
    if not cache:
        options["read_cache_size"] = 0
    return RemoteRuns(transport_for(settings, url, tokens), **options), settings


def _captured_request(call) -> bytes:
    """The bytes the kit's connection sends for one call."""
    from http.client import HTTPConnection  # urllib3's connection class inherits its send

    sent: list[bytes] = []
    original = HTTPConnection.send

    def recording(self, data):
        sent.append(bytes(data))
        return original(self, data)

    HTTPConnection.send = recording
    try:
        call()
    finally:
        HTTPConnection.send = original
    return b"".join(sent)


class _RawCall:
    """One keep-alive http.client connection sending `request` (a captured HTTP/1.1
    request) as its own request line, headers and body, and reading the whole answer."""

    def __init__(self, url: str, request: bytes):
        import http.client
        from urllib.parse import urlsplit

        head, self._body = request.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self._method, self._path, _ = lines[0].split(" ")
        self._headers = [line.split(": ", 1) for line in lines[1:]]
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        self.status = 0

    def __call__(self) -> None:
        connection = self._connection
        connection.putrequest(self._method, self._path, skip_host=True,
                              skip_accept_encoding=True)
        for name, value in self._headers:
            connection.putheader(name, value)
        connection.endheaders(self._body)
        response = connection.getresponse()
        response.read()
        self.status = response.status


def _in_request(settings: dict):
    """What the monolith's request around a call holds: its deadline and its (unsampled)
    server span, current for a batch of calls."""
    from contextlib import ExitStack

    from opentelemetry.trace import SpanKind

    from shims import deadline, telemetry

    stack = ExitStack()
    token = deadline.start(settings["REQUEST_DEADLINE"])
    stack.callback(deadline.end, token)
    stack.enter_context(telemetry.current_span(
        telemetry.start_span("GET /api/runs", SpanKind.SERVER)))
    return stack


def _cpu_per_call(fn, calls: int, settings: dict | None) -> float:
    started = time.process_time()
    done = 0
    while done < calls:  # batches well inside the request's deadline
        batch = min(200, calls - done)
        if settings is None:
            for _ in range(batch):
                fn()
        else:
            with _in_request(settings):
                for _ in range(batch):
                    fn()
        done += batch
    return (time.process_time() - started) / calls * 1e6


def _pair(url: str, user_id: int, cache: bool, samples: int, calls: int) -> tuple[dict, dict]:
    from bench.common import BENCH_MONTH

    client, settings = _kit_client(url, cache)
    year, month = BENCH_MONTH

    def kit() -> None:
        client.list_runs(user_id, year, month)

    _cpu_per_call(kit, 200, settings)  # warm: token fetched, ETag held, connection open
    with _in_request(settings):
        request = _captured_request(kit)
    raw = _RawCall(url, request)
    _cpu_per_call(raw, 200, None)
    assert _captured_request(raw) == request, "the raw call must send the kit's bytes"
    kit_us, raw_us = [], []
    for i in range(samples):
        order = [(raw_us, raw, None), (kit_us, kit, settings)]
        if i % 2:
            order.reverse()
        for into, fn, context in order:
            into.append(_cpu_per_call(fn, calls, context))
    pair = {"kit_us": spread(kit_us), "raw_us": spread(raw_us),
            "pair_ratios": spread([k / r for k, r in zip(kit_us, raw_us, strict=True)])}
    return pair, {"request_bytes": len(request), "status": raw.status}


def _client(url: str, user_id: int, quick: bool) -> dict:
    from gevent import monkey

    monkey.patch_all()
    import logging

    logging.disable(logging.CRITICAL)
    from shims import telemetry

    telemetry.configure("monolith")  # as monolith/wsgi.py: unsampled spans, ids sent on
    samples, calls = (3, 500) if quick else (7, 2000)
    cached, seen = _pair(url, user_id, True, samples, calls)
    uncached, _ = _pair(url, user_id, False, samples, calls)
    assert seen["status"] == 304, f"a repeated read should be a 304, got {seen['status']}"
    return {"cached": cached, "uncached": uncached, "samples": samples, "calls": calls, **seen}


if __name__ == "__main__" and sys.argv[1:2] == ["--client"]:
    print(json.dumps(_client(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "quick")))
