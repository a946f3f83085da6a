"""Remote<Feature>: a contract's client over a transport.

Subclass `RemoteClient` with `spec = describe(Protocol, name)` and the class
gains one method per contract method. A call posts its arguments to
`/rpc/<contract>/<method>`; a 200 carries the result, decoded back into the
contract's dataclasses; any other status carries `{"error", "message", "field", "errors"}`,
mapped back to the very contract error the local side would have raised.

Reads are retried once on a transport error (they have no side effects), except
after a read timeout, which a retry would only double; a read and its retries get
`read_budget` seconds in all (the request's deadline permitting), so a read whose service
hangs falls back within about that long, not one read timeout per attempt.

Every write carries an `Idempotency-Key` (shims/idempotency.py) and the service keeps its
outcome under it, so a write whose outcome is unknown (no answer, a reset, a 502/503/504)
is sent again with the same key, at most `write_attempts` times and only within the
request's deadline: the service applies it once and answers every attempt alike. A write
refused before anything was sent (connection refused) is tried again too, harmlessly. A
write answered outside the contract (a 500, garbage) is not: the service would only say
the same again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from tenacity import (RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_any,
                      wait_exponential)

from shims import deadline, idempotency
from shims.contract import ContractSpec, MethodSpec
from shims.errors import (BadAnswer, DeadlineExceeded, TransportError, ValidationError,
                          contract_error_from)
from shims.http_cache import ReadCache
from shims.transport import GATEWAY_STATUSES, Reply, Transport
from shims.wire import from_wire, to_wire

RPC_PREFIX = "/rpc"
# Arguments already JSON as they are (most reads take ids and numbers): to_wire's checks
# for dataclasses, sequences and dates would only hand them back.
_PLAIN = frozenset({int, str, float, bool, type(None)})
# The remote clients' settings: every app that calls a service sends writes alike; only
# one with a local side to fall back on (the monolith's routers) gives reads a budget.
WRITE_DEFAULTS: dict[str, Any] = {
    "REMOTE_WRITE_ATTEMPTS": 3,  # sends of one write whose outcome stays unknown
}
DEFAULTS: dict[str, Any] = {
    "REMOTE_READ_BUDGET": 1.0,  # seconds for one read, its retry included, before fallback
    **WRITE_DEFAULTS,
}


def client_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """RemoteClient's keyword arguments from an app's settings. Without
    `REMOTE_READ_BUDGET` (a service with no local side: cutting a read short would only
    fail it) a read waits as long as its timeouts and the request's deadline allow."""
    return {"read_budget": settings.get("REMOTE_READ_BUDGET"),
            "write_attempts": settings["REMOTE_WRITE_ATTEMPTS"]}


def rpc_path(method: MethodSpec) -> str:
    return f"{RPC_PREFIX}/{method.contract}/{method.name}"


class RemoteClient:
    spec: ClassVar[ContractSpec]

    def __init__(self, transport: Transport, *, read_attempts: int = 2, retry_wait: float = 0.05,
                 read_cache_size: int = 512, read_budget: float | None = None,
                 write_attempts: int = 3):
        self._transport = transport
        self._read_budget = read_budget  # None: only the deadline and the timeouts bound it
        self._read_attempts = read_attempts
        self._retry_wait = retry_wait
        # The writes' Retrying is built once: constructing one costs ~35 us (measured).
        # Sharing it across greenlets is safe: each iteration keeps its own attempt count,
        # and tenacity's per-step state sits in a threading.local, which gevent's patching
        # makes greenlet-local.
        self._write_retrying = Retrying(stop=stop_any(stop_after_attempt(write_attempts),
                                                      _no_time_left),
                                        wait=wait_exponential(multiplier=retry_wait, max=1.0),
                                        reraise=True,
                                        retry=retry_if_exception(_write_worth_retrying))
        self._cache = ReadCache(read_cache_size)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in cls.spec.methods.values():
            setattr(cls, method.name, _client_method(method))

    def call(self, method: MethodSpec, arguments: dict[str, Any]) -> Any:
        payload = {"args": {name: value if type(value) in _PLAIN else to_wire(value)
                            for name, value in arguments.items()}}
        if not method.is_read:
            return self._write(method, arguments, payload)
        with deadline.within(self._read_budget):
            return self._read(method, payload)

    def _read(self, method: MethodSpec, payload: dict[str, Any]) -> Any:
        """Sent again after a transport error worth it, up to `read_attempts` sends in all
        and while the deadline leaves time. A loop rather than tenacity (which writes keep):
        its Future and state per attempt cost ~8 us of every read (B9), for a retry that
        needs neither backoff nor statistics."""
        attempt = 1
        while True:
            try:
                return self._conditional_read(method, payload)
            except TransportError as error:
                if attempt >= self._read_attempts or not error.retryable or _time_is_up():
                    raise
            attempt += 1
            time.sleep(self._retry_wait)  # gevent's, once patched: other greenlets run

    def _write(self, method: MethodSpec, arguments: dict[str, Any],
               payload: dict[str, Any]) -> Any:
        """Sent with its key until answered; the error raised after the last attempt says
        `sent` if any attempt may have reached the service."""
        key = idempotency.for_call(method, arguments) or idempotency.fresh()
        headers = {idempotency.HEADER: key}
        previous: TransportError | None = None
        for attempt in self._write_retrying:
            with attempt:
                try:
                    # A fresh connection: a kept-alive one the server is closing would cost
                    # an attempt (docs/turnout.md, "Writes on fresh connections").
                    return self._decode(method, self._transport.post(
                        rpc_path(method), payload, headers=headers, fresh_connection=True))
                except TransportError as error:
                    error.sent = error.sent or (previous is not None and previous.sent)
                    if isinstance(error, DeadlineExceeded) and previous is not None:
                        # The attempt before failed on the service's account: say that, and
                        # let it count against the breaker.
                        previous.sent = error.sent
                        raise previous from previous.__cause__
                    previous = error
                    raise
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _conditional_read(self, method: MethodSpec, payload: dict[str, Any]) -> Any:
        """A read that sends the ETag of the answer we hold; a 304 means it is still true.
        A read the contract marks not cacheable is only sent: nothing of it is kept, not
        even its arguments in a cache key (they may be a password)."""
        path = rpc_path(method)
        if not method.cacheable:
            return self._decode(method, self._transport.post(path, payload))
        key = ReadCache.key(path, payload)
        held = self._cache.held(key)
        reply = self._transport.post(path, payload,
                                     headers={"If-None-Match": held[0]} if held else None)
        if reply.status == 304 and held is not None:
            self._cache.put(key, *held)  # still true: keep it, even if evicted meanwhile
            return ReadCache.copy(held[1])
        result = self._decode(method, reply)
        etag = reply.headers.get("ETag")
        if etag:
            self._cache.put(key, etag, result)
        return result

    def _decode(self, method: MethodSpec, reply: Reply) -> Any:
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status == 200 and "result" in body:
            try:
                return from_wire(method.returns, body["result"], "result")
            except ValidationError as exc:
                raise BadAnswer(f"{method.qualified_name}: the service answered a result "
                                f"that breaks the contract ({exc.message})") from exc
        error = contract_error_from(body, reply.status)
        if error is not None:
            raise error
        # A 502/503/504 is the service (or what stands before it) not answering this time;
        # anything else outside the contract it would answer again.
        kind = TransportError if reply.status in GATEWAY_STATUSES else BadAnswer
        raise kind(f"{method.qualified_name}: the service answered HTTP "
                   f"{reply.status} {str(body.get('message', ''))[:200]}".rstrip())


def _write_worth_retrying(error: BaseException) -> bool:
    """Another send of the same key is safe; it helps unless the service answered outside
    the contract (it would again) or the deadline is spent."""
    return isinstance(error, TransportError) and not isinstance(error, (BadAnswer,
                                                                       DeadlineExceeded))


def _no_time_left(retry_state: RetryCallState) -> bool:
    # tenacity before 7 passes a stop function the RetryCallState only if its parameter
    # is named `retry_state` (otherwise: attempt number and seconds, the pre-5.0 way).
    return _time_is_up()


def _time_is_up() -> bool:
    left = deadline.remaining()
    return left is not None and left <= 0.01


def _client_method(method: MethodSpec):
    def call(self: RemoteClient, *args: Any, **kwargs: Any) -> Any:
        return self.call(method, method.bind(args, kwargs))

    call.__name__ = method.name
    call.__qualname__ = f"Remote.{method.name}"
    call.__doc__ = method.doc
    return call
