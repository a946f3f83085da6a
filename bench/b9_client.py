"""B9's client process: the kit's remote call and the raw http.client call it is compared with,
alternating in one gevent-patched process (bench/b9_client_overhead.py starts it on CPU 0).

    python -m bench.b9_client <data service URL> <user id> quick|full   (BENCH_TOKEN set)

Prints one JSON line: CPU µs per call of each, cache on and off.
"""

from gevent import monkey

monkey.patch_all()  # first, as in a monolith worker: everything below uses gevent's sockets

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from bench.common import spread  # noqa: E402

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

    def reconnect(self) -> None:
        """A new connection, before a sample and outside it: the server closes one left idle
        past its keep-alive timeout (gunicorn: 2 s) while the kit's sample runs, and http.client
        does not notice (the kit's pool does, and reconnects within its sample)."""
        self._connection.close()
        self._connection.connect()

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


ROUNDS = 10  # batches per sample and side


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
    raw.reconnect()
    _cpu_per_call(raw, 200, None)
    assert _captured_request(raw) == request, "the raw call must send the kit's bytes"
    kit_us, raw_us = [], []
    batch = calls // ROUNDS

    def raw_batch() -> float:
        raw.reconnect()  # outside the measure (see reconnect)
        return _cpu_per_call(raw, batch, None)

    for i in range(samples):
        # Small batches taken in turn: both sides see the same load on a shared machine.
        kit_cpu = raw_cpu = 0.0
        for j in range(ROUNDS):
            if (i + j) % 2:
                kit_cpu += _cpu_per_call(kit, batch, settings)
                raw_cpu += raw_batch()
            else:
                raw_cpu += raw_batch()
                kit_cpu += _cpu_per_call(kit, batch, settings)
        kit_us.append(kit_cpu / ROUNDS)
        raw_us.append(raw_cpu / ROUNDS)
    pair = {"kit_us": spread(kit_us), "raw_us": spread(raw_us),
            "pair_ratios": spread([k / r for k, r in zip(kit_us, raw_us, strict=True)])}
    return pair, {"request_bytes": len(request), "status": raw.status}


def _client(url: str, user_id: int, quick: bool) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    from shims import telemetry

    telemetry.configure("monolith")  # as monolith/wsgi.py: unsampled spans, ids sent on
    samples, calls = (3, 500) if quick else (7, 2000)
    cached, seen = _pair(url, user_id, True, samples, calls)
    uncached, _ = _pair(url, user_id, False, samples, calls // 4)  # ~2 ms each: fewer
    assert seen["status"] == 304, f"a repeated read should be a 304, got {seen['status']}"
    return {"cached": cached, "uncached": uncached, "samples": samples, "calls": calls,
            "rounds": ROUNDS, **seen}


if __name__ == "__main__":
    print(json.dumps(_client(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "quick")))
