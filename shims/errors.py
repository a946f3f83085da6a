"""The error tree every contract shares.

One root (`TurnoutError`). Contract errors are what a feature may raise on
purpose; the local implementation raises them directly and the remote client
maps an HTTP status and JSON body back to the very same class, so callers
never learn which side answered. Transport errors (the remote side could not
be reached or answered garbage) live apart, because the router treats them
differently: they are grounds for fallback, contract errors are not.

Each class carries its HTTP status and a stable machine-readable `code`, in
the style of Werkzeug's exceptions, so one error handler serves every app.
"""

from __future__ import annotations


class TurnoutError(Exception):
    """Root of every error raised by Turnout and the features it routes."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class ContractError(TurnoutError):
    """An outcome the contract defines; identical from the local and remote side."""

    status = 400
    code = "contract_error"


class ValidationError(ContractError):
    """The payload broke the contract's schema; `field` names the culprit."""

    status = 400
    code = "invalid"


class Unauthorized(ContractError):
    status = 401
    code = "unauthorized"


class Forbidden(ContractError):
    status = 403
    code = "forbidden"


class NotFound(ContractError):
    status = 404
    code = "not_found"


class Conflict(ContractError):
    status = 409
    code = "conflict"


class IdempotencyKeyReused(ContractError):
    """A write came with an `Idempotency-Key` already used for a different request (Stripe's
    rule): replaying the first outcome would answer a question that was not asked."""

    status = 422
    code = "idempotency_key_reused"


class UpstreamError(ContractError):
    """A system outside Turnout (e.g. Strava) failed; the contract reports it."""

    status = 502
    code = "upstream_error"


class InvalidToken(TurnoutError):
    """Service-to-service: no bearer token, or one that is forged, expired or for another
    audience. Not a contract error: the client fetches a fresh token once and retries."""

    status = 401
    code = "invalid_token"  # RFC 6750's name


class InsufficientScope(TurnoutError):
    """Service-to-service: a valid token that does not grant this method's scope."""

    status = 403
    code = "insufficient_scope"  # RFC 6750's name


class TransportError(TurnoutError):
    """The remote side could not be reached, timed out, or answered nonsense.

    `retryable` is False when trying again would only wait as long again: a read that
    already ran out its timeout (a hung or stopped service behind a socket circus keeps
    open) is answered from the fallback at once rather than retried.

    `sent` is False only when the request provably never left this process or never got a
    connection (refused, connect timeout, no time left to start it): a write that failed so
    was not applied. Anything else may have reached the service, which may have applied it.
    """

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, field: str | None = None, retryable: bool = True,
                 sent: bool = True):
        super().__init__(message, field=field)
        self.retryable = retryable
        self.sent = sent


class BadAnswer(TransportError):
    """The service answered, but outside the contract (a 500, a body that is not JSON, a
    result of the wrong shape): asking again would get the same, so a write is not retried."""


class ServiceTimeout(TransportError):
    """The service took its whole read timeout without answering (`sent`: the outcome is
    unknown). Like `DeadlineExceeded` it counts against the breaker only once the service
    has answered nothing for a while: under a graceful reload on a loaded host some calls
    run out their timeout while others are answered, and opening the breaker then would
    refuse every write of a service that is up."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False, sent=True)


class DeadlineExceeded(TransportError):
    """The request's time budget (shims/deadline.py), not the service's own timeout, ended
    the call: it was spent before the call started (nothing sent: a write refused so was
    not applied), or it cut the call's wait short (`sent`: the outcome is unknown). It says
    the service was slower than this request could wait, not that it is down, so it does
    not count against the service's breaker: a graceful reload must not open it."""

    def __init__(self, message: str, *, sent: bool = False):
        super().__init__(message, retryable=False, sent=sent)


CONTRACT_ERRORS: dict[str, type[ContractError]] = {
    cls.code: cls
    for cls in (ValidationError, Unauthorized, Forbidden, NotFound, Conflict,
                IdempotencyKeyReused, UpstreamError)
}
