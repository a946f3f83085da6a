"""A stand-in for the urllib3 pool under `HttpTransport`, for unit tests of the remote client.

It answers each POST from answers registered per URL, in order (the last one repeats), and
records every request. Failures are raised as the real urllib3 exceptions, so the
transport's mapping of them is what is tested. Over real sockets, the contract suites
(tests/contract) run the same client against real services.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from urllib3 import Timeout

try:
    from urllib3 import HTTPHeaderDict
except ImportError:  # urllib3 1.26 keeps it in a module of its own
    from urllib3._collections import HTTPHeaderDict
from urllib3.exceptions import (ConnectTimeoutError, NewConnectionError, ProtocolError,
                                ReadTimeoutError)

# Each failure a socket can give, as urllib3 raises it.
FAILURES = {
    "refused": lambda url: _caused(NewConnectionError(None, "Failed to establish a new connection"),
                                   ConnectionRefusedError(111, "Connection refused")),
    "connect_timeout": lambda url: ConnectTimeoutError(f"{url}: connect timed out"),
    "read_timeout": lambda url: ReadTimeoutError(None, url, "read timed out"),
    "reset": lambda url: ProtocolError("Connection aborted.", ConnectionResetError(104)),
}


def _caused(error: Exception, cause: OSError) -> Exception:
    error.__cause__ = cause  # urllib3 raises it `from` the socket's OSError
    return error


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    urllib3_timeout: Timeout

    def json(self) -> Any:
        body = self.body
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)

    @property
    def timeout(self) -> tuple[float, float]:
        return self.urllib3_timeout.connect_timeout, self.urllib3_timeout.read_timeout


@dataclass
class FakeResponse:
    status: int
    data: bytes
    headers: HTTPHeaderDict


class FakePool:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.request_history: list[SentRequest] = []
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self.closed = False

    def post(self, url: str, answers: list[dict[str, Any]] | None = None, **answer: Any) -> None:
        """`answer`: status_code, json or text, headers, or fail (a FAILURES name)."""
        self._answers[url] = list(answers) if answers is not None else [answer]

    @property
    def call_count(self) -> int:
        return len(self.request_history)

    @property
    def last_request(self) -> SentRequest:
        return self.request_history[-1]

    def urlopen(self, method: str, url: str, *, body: bytes, headers: dict[str, str],
                timeout: Timeout, **_options: Any) -> FakeResponse:
        full_url = self.base_url + url
        self.request_history.append(SentRequest(method, full_url, dict(headers), body, timeout))
        answers = self._answers.get(full_url)
        if not answers:
            raise AssertionError(f"no answer registered for {method} {full_url}")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if "fail" in answer:
            raise FAILURES[answer["fail"]](full_url)
        if "json" in answer:
            data = json.dumps(answer["json"]).encode()
        else:
            data = answer.get("text", "").encode()
        return FakeResponse(answer.get("status_code", 200), data,
                            HTTPHeaderDict(answer.get("headers", {})))

    def close(self) -> None:
        self.closed = True
