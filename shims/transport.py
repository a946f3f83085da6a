"""How a remote client reaches a service: over HTTP, or in-process through WSGI.

A transport has one job: send a JSON payload to a path and hand back the status
and the decoded JSON body. Anything that stops it from doing so (refused
connection, timeout, a body that is not JSON) is a `TransportError`, kept apart
from the contract errors a well-formed answer may carry.

`HttpTransport` shares one keep-alive pool of http.client connections per service per
process (`service_pool`, shims/keepalive.py). Under gevent the pool must be as large as the
calls a worker has in flight, or connections are opened and thrown away on every burst
(measured: 50 greenlets on the default pool of 10 discarded 40 connections per round).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, NewConnectionError,
                                ReadTimeoutError)

from shims import deadline, telemetry
from shims.errors import BadAnswer, DeadlineExceeded, ServiceTimeout, TransportError
from shims.http_cache import GZIP_MIN_BYTES, compress
from shims.keepalive import KeepAlivePool


# gzip: services compress large answers for callers that accept it (shims/http_cache.py);
# urllib3 inflates them. The agent names the caller in the services' access logs.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip", "Content-Type": "application/json",
                   "User-Agent": "turnout"}


# Made once: json.dumps with any option but the defaults builds an encoder per call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive over HTTP


class Transport(Protocol):
    def post(self, path: str, payload: Any, *, headers: dict[str, str] | None = None,
             fresh_connection: bool = False) -> Reply: ...


class TokenSource(Protocol):
    """Where a transport gets its bearer token (shims/auth.py's ClientCredentials)."""

    def headers(self) -> dict[str, str]: ...
    def invalidate(self) -> None: ...


def pooled_session(pool_size: int) -> requests.Session:
    """A session for an outside API (Strava): it honours the environment's proxies and
    CA bundle, as any egress from the host should."""
    session = requests.Session()
    # No retries here: the remote client retries reads itself and never retries writes.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def service_session(pool_size: int) -> requests.Session:
    """A requests session for the token dealer and JWKS calls between Turnout's processes.

    It ignores `HTTP_PROXY`/`ALL_PROXY` and `~/.netrc` (`trust_env = False`): a host's egress
    proxy must not carry calls between services, and a netrc entry for a service's host
    would replace the bearer token with basic credentials. A CA bundle named by
    `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` is still used for internal HTTPS, read once here.
    """
    session = pooled_session(pool_size)
    session.trust_env = False
    session.verify = _ca_bundle() or True
    return session


def _ca_bundle() -> str | None:
    """The CA bundle the environment names, the variables requests itself reads."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


class _BearerTransport:
    """Adds the bearer token and what is left of the request's deadline to each call; on a
    refused token fetches a new one and tries once more, never more (it expired early, or
    the dealer rotated its keys). A call is not started once the deadline is spent. Each
    send is a CLIENT span whose `traceparent` goes with it (shims/telemetry.py)."""

    base_url: str
    _tokens: TokenSource | None = None

    def post(self, path: str, payload: Any, *, headers: dict[str, str] | None = None,
             fresh_connection: bool = False) -> Reply:
        deadline.check(f"POST {path}")
        reply = self._traced_send(path, payload, headers, fresh_connection)
        if self._tokens is not None and _token_refused(reply):
            self._tokens.invalidate()
            deadline.check(f"POST {path}")
            reply = self._traced_send(path, payload, headers, fresh_connection)
        return reply

    def _traced_send(self, path: str, payload: Any, headers: dict[str, str] | None,
                     fresh_connection: bool) -> Reply:
        headers = self._with_token(headers)  # a token fetch is a hop (and span) of its own
        if not telemetry.recorded():
            # No span of its own to make (client_span would hand back the current one): the
            # traceparent alone goes, without two context managers per call (~3 us, B9).
            return self._send(path, payload, {**headers, **telemetry.outgoing_headers()},
                              fresh_connection)
        with telemetry.client_span("POST", self.base_url + path, f"POST {path}") as span:
            try:
                reply = self._send(path, payload, {**headers, **telemetry.outgoing_headers()},
                                   fresh_connection)
            except TransportError as error:
                telemetry.failed(span, error, error.message)
                raise
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    def _with_token(self, headers: dict[str, str] | None) -> dict[str, str]:
        try:
            token = self._tokens.headers() if self._tokens else {}
        except TransportError as exc:  # no token, so the call itself never left
            raise TransportError(f"no service token for the call: {exc.message}",
                                 sent=False) from exc
        return {**(headers or {}), **deadline.headers(), **token}

    def _send(self, path: str, payload: Any, headers: dict[str, str],
              fresh_connection: bool) -> Reply:
        raise NotImplementedError


class Pool(Protocol):
    """What HttpTransport needs of a connection pool: shims/keepalive.py's, or urllib3's
    `HTTPConnectionPool` (the same `urlopen`, the same exceptions)."""

    def urlopen(self, method: str, url: str, **options: Any) -> Any: ...
    def close(self) -> None: ...


def service_pool(base_url: str, pool_size: int) -> Pool:
    """A keep-alive pool to one of Turnout's services, as large as a worker's calls in
    flight: the standard library's http.client under a pool of our own (shims/keepalive.py),
    not requests (~0.2-0.3 ms of CPU per call more: request preparation, cookie jars,
    environment lookups; docs/benchmarks.md, B3) nor urllib3's pool (~0.12 ms more; B9)."""
    return KeepAlivePool(base_url, pool_size,
                         ca_certs=_ca_bundle() if base_url.startswith("https://") else None)


class HttpTransport(_BearerTransport):
    """JSON over HTTP to one service: one keep-alive pool for reads, another for writes.

    `pool` replaces both (tests pass an urllib3-like fake)."""

    def __init__(self, base_url: str, *, connect_timeout: float = 1.0, read_timeout: float = 5.0,
                 pool_size: int = 50, pool: Pool | None = None,
                 tokens: TokenSource | None = None):
        self.base_url = base_url.rstrip("/")
        self._prefix = urlsplit(self.base_url).path
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._pool = pool or service_pool(self.base_url, pool_size)
        # Writes never reuse a kept-alive connection: a server closing an idle one (its
        # keep-alive timeout, a graceful reload) races the write sent on it, and a write
        # that failed that way cannot be retried safely. A new connection to a socket
        # circus holds open is always accepted by a live worker. `Connection: close` makes
        # each write's connection end with its answer, so the next write opens a new one.
        self._fresh = pool or service_pool(self.base_url, pool_size)
        self._tokens = tokens

    def close(self) -> None:
        """Closes the kept-alive connections (a stopping test server answers sooner)."""
        self._pool.close()
        self._fresh.close()

    def _send(self, path: str, payload: Any, headers: dict[str, str],
              fresh_connection: bool) -> Reply:
        url = f"{self.base_url}{path}"
        pool, headers = self._pool, {**DEFAULT_HEADERS, **headers}
        if fresh_connection:
            pool, headers["Connection"] = self._fresh, "close"
        body = _compact_json(payload).encode()
        if len(body) >= GZIP_MIN_BYTES:  # a runner's history in a mirrored write, say
            body, headers["Content-Encoding"] = compress(body), "gzip"
        timeout = self._timeout_now()
        try:
            response = pool.urlopen("POST", self._prefix + path, body=body, headers=headers,
                                    timeout=timeout, retries=False, redirect=False)
        except NewConnectionError as exc:  # before its base class, ConnectTimeoutError
            raise TransportError(f"{url} could not be reached: {_os_reason(exc)}",
                                 sent=False) from exc
        except ConnectTimeoutError as exc:
            message = f"{url} did not accept a connection within {timeout.connect_timeout:g}s"
            if timeout.connect_timeout < self._timeout.connect_timeout:
                raise DeadlineExceeded(f"{message}, all the request's budget left") from exc
            raise TransportError(message, sent=False) from exc
        except ReadTimeoutError as exc:
            message = f"{url} did not answer within {timeout.read_timeout:g}s"
            if timeout.read_timeout < self._timeout.read_timeout:
                raise DeadlineExceeded(f"{message}, all the request's budget left",
                                       sent=True) from exc
            raise ServiceTimeout(message) from exc
        except HTTPError as exc:  # a reset: the request may have arrived, or not
            raise TransportError(f"{url} could not be reached: {type(exc).__name__}") from exc
        return Reply(status=response.status, body=_json(response.data, url, response.status),
                     headers=response.headers)

    def _timeout_now(self) -> urllib3.Timeout:
        """The configured timeouts, cut to what is left of the request's deadline."""
        if deadline.remaining() is None:
            return self._timeout
        return urllib3.Timeout(connect=deadline.cap(self._timeout.connect_timeout),
                               read=deadline.cap(self._timeout.read_timeout))


class WsgiTransport(_BearerTransport):
    """Calls a WSGI app in this process, with no socket: the contract suite's middle ground."""

    def __init__(self, app: Callable, base_url: str = "http://service.local", *,
                 tokens: TokenSource | None = None):
        from werkzeug.test import Client

        self.base_url = base_url
        self._client = Client(app)
        self._tokens = tokens

    def _send(self, path: str, payload: Any, headers: dict[str, str],
              fresh_connection: bool) -> Reply:
        response = self._client.post(path, data=json.dumps(payload), headers=headers,
                                     content_type="application/json")
        return Reply(status=response.status_code,
                     body=_json(response.get_data(), path, response.status_code),
                     headers=dict(response.headers))


def _os_reason(exc: BaseException) -> str:
    """"Connection refused", say, from the OSError behind urllib3's error: raised `from` it
    by urllib3 2, while handling it (the context, no cause) by urllib3 1.26."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return type(exc).__name__


def _token_refused(reply: Reply) -> bool:
    return reply.status == 401 and isinstance(reply.body, dict) \
        and reply.body.get("error") == "invalid_token"


# A proxy or the service's own server is in the way: no answer from the service itself.
GATEWAY_STATUSES = frozenset({502, 503, 504})


def _json(content: bytes, where: str, status: int) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError as exc:
        error = TransportError if status in GATEWAY_STATUSES else BadAnswer
        raise error(f"{where} answered HTTP {status} with a body that is not JSON") from exc


def transport_for(settings: Mapping[str, Any], url: str,
                  tokens: TokenSource | None = None) -> HttpTransport:
    """An HttpTransport to `url` with the process's remote-call settings
    (`REMOTE_CONNECT_TIMEOUT`, `REMOTE_READ_TIMEOUT`, `REMOTE_POOL_SIZE`)."""
    return HttpTransport(url, connect_timeout=settings["REMOTE_CONNECT_TIMEOUT"],
                         read_timeout=settings["REMOTE_READ_TIMEOUT"],
                         pool_size=settings["REMOTE_POOL_SIZE"], tokens=tokens)
