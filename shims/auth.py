"""Service-to-service tokens: the caller's side (`ClientCredentials`) and the callee's
(`TokenVerifier`), both talking to the token dealer (shims/tokendealer).

A caller fetches an RS256-signed JWT from the dealer with the OAuth2 client-credentials
grant and sends it as `Authorization: Bearer ...` on every call; the token is cached
until shortly before it expires, and the transports (shims/transport.py) drop it and
fetch a new one once when a service answers 401 `invalid_token`.

A service verifies the signature against the dealer's JWKS (cached, and re-fetched when
a token names a key it has not seen, at most once every ten seconds), the issuer, the
audience, the times, and the scope of the method called: `<contract>:<read|write>`.
A caller sends the same token on every call until it renews it, so a verified token's
claims are kept, by the token's text, while the key set they were verified under is the
current one: a later call checks only the expiry and the scope (the signature check and
the two JWT parses cost ~290 µs a call; a kept token, ~4 µs).
Nothing here does I/O at import or construction: services start before the dealer does.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import gevent.lock
import jwt
import requests
from jwt.exceptions import (
    DecodeError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWKError,
    PyJWTError,
)

from shims import telemetry
from shims.contract import MethodSpec
from shims.errors import InsufficientScope, InvalidToken, TransportError
from shims.settings import ConfigError
from shims.transport import service_session

log = logging.getLogger("turnout.auth")

ALGORITHM = "RS256"  # the only one accepted: never "none", never an HMAC
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
UNKNOWN_KID_REFETCH_INTERVAL = 10.0  # seconds: forged kids cannot make us hammer the dealer
JWKS_TIMEOUT = (0.5, 2.0)
VERIFIED_TOKENS = 256  # verified tokens kept per service process (see TokenVerifier.verify)


def scope_for(method: MethodSpec) -> str:
    """The scope a caller needs for a method: `runs:write`, `accounts:read`..."""
    return f"{method.contract}:{method.kind}"


# --- the caller's side ------------------------------------------------------------------

class ClientCredentials:
    """A `TokenSource` for shims/transport.py: one client's tokens for one audience.

    `scopes=None` asks for every scope the dealer grants this client for the audience.
    The token is reused until `refresh_margin` seconds before it expires (or half its
    lifetime, for tokens shorter than twice the margin); concurrent greenlets wanting a
    token while none is cached wait for one single fetch.
    """

    def __init__(self, token_url: str, client_id: str, client_secret: str, audience: str,
                 scopes: Iterable[str] | None = None, *,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = (0.5, 5.0), refresh_margin: float = 30.0,
                 clock: Callable[[], float] = time.time):
        if not client_id or not client_secret:
            raise ValueError("ClientCredentials needs a client id and a client secret")
        self.token_url = token_url
        self.client_id = client_id
        self.audience = audience
        self.scopes = None if scopes is None else tuple(sorted(set(scopes)))
        self._secret = client_secret
        self._session = session or service_session(2)
        self._timeout = timeout
        self._margin = refresh_margin
        self._clock = clock
        self._lock = gevent.lock.BoundedSemaphore()  # guards the fetch only
        self._token: str | None = None
        self._refresh_at = 0.0

    def __repr__(self) -> str:  # never the secret
        return (f"ClientCredentials({self.token_url!r}, client_id={self.client_id!r}, "
                f"audience={self.audience!r})")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        token = self._cached()
        if token is not None:
            return token
        with self._lock:
            token = self._cached()  # another greenlet may have fetched it while we waited
            if token is None:
                token = self._fetch()
        return token

    def invalidate(self) -> None:
        self._token = None

    def _cached(self) -> str | None:
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        return None

    def _post(self, form: dict[str, str], auth: tuple[str, str]) -> requests.Response:
        """One token request, sent again once if the connection dropped before any answer:
        a kept-alive connection the dealer closed (a reload replaces its workers) fails the
        first write on it. Asking for a token twice is harmless; a timeout is not retried,
        since the dealer may just be slow."""
        for attempt in (1, 2):
            with telemetry.client_span("POST", self.token_url, "POST token") as span:
                try:
                    response = self._session.post(
                        self.token_url, data=form, auth=auth, timeout=self._timeout,
                        headers={"Accept": "application/json", **telemetry.outgoing_headers()})
                except requests.ConnectionError as exc:
                    telemetry.failed(span, exc)
                    if attempt == 2 or isinstance(exc, requests.Timeout) or not _dropped(exc):
                        raise
                    continue
                span.set_attribute("http.response.status_code", response.status_code)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self) -> str:
        form = {"grant_type": "client_credentials", "audience": self.audience}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        # RFC 6749 2.3.1: id and secret are form-encoded before they go into Basic.
        auth = (quote_plus(self.client_id), quote_plus(self._secret))
        where = f"the token dealer at {self.token_url}"
        started = self._clock()
        try:
            response = self._post(form, auth)
        except requests.Timeout:
            raise TransportError(f"{where} did not answer within {self._timeout[1]:g}s") \
                from None
        except requests.RequestException as exc:
            raise TransportError(f"{where} could not be reached: {type(exc).__name__}") \
                from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TransportError(f"{where} answered HTTP {response.status_code} with a body "
                                 "that is not a JSON object")
        if response.status_code != 200:
            error = str(body.get("error", "unknown_error"))[:100]
            description = str(body.get("error_description", ""))[:200]
            raise TransportError(f"{where} refused a token to client {self.client_id!r} for "
                                 f"audience {self.audience!r}: HTTP {response.status_code} "
                                 f"{error} {description}".rstrip())
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransportError(f"{where} answered without an access_token")
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = 60.0  # RFC 6749 only recommends expires_in: assume a short life
        self._token = token
        self._refresh_at = started + max(lifetime - self._margin, lifetime / 2)
        log.info("token fetched for client %s, audience %s, valid %ss", self.client_id,
                 self.audience, lifetime)
        return token


def _dropped(exc: requests.ConnectionError) -> bool:
    """The server closed the connection without answering (not: refused, unreachable)."""
    text = repr(exc)
    return "RemoteDisconnected" in text or "Connection aborted" in text


# --- the service's side -----------------------------------------------------------------

@dataclass(frozen=True)
class Claims:
    subject: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class _Verified:
    """A token's claims, the key that verified it and the key set that key came from."""

    claims: Claims
    kid: str
    keys: dict[str, Any]


class TokenVerifier:
    """Verifies the dealer's tokens. `jwks_source` is the dealer's JWKS URL (http or https)
    or the path of a JWKS file (re-read when it changes).

    If the JWKS cannot be fetched at all the service cannot judge any token: `verify`
    raises `TransportError` (503), never `InvalidToken`. A stale JWKS is kept and used
    when a refresh fails.
    """

    def __init__(self, jwks_source: str | os.PathLike[str], issuer: str, audience: str, *,
                 session: requests.Session | None = None, cache_seconds: float = 300.0,
                 leeway: float = 5, clock: Callable[[], float] = time.time,
                 verified_tokens: int = VERIFIED_TOKENS):
        source = os.fspath(jwks_source)
        self._url = source if source.startswith(("http://", "https://")) else None
        self._path = None if self._url else Path(source)
        self.issuer = issuer
        self.audience = audience
        self._session = session or service_session(2)
        self._cache_seconds = cache_seconds
        self._leeway = leeway
        self._clock = clock
        self._lock = gevent.lock.BoundedSemaphore()
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last fetch attempt, for the URL source
        self._loaded_at: float | None = None  # last successful fetch
        self._file_stamp: tuple[int, int, int] | None = None
        # Only tokens that verified are kept, so forged ones cannot fill it; a handful of
        # callers, each renewing its token now and then, need a few entries.
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._verified_size = verified_tokens

    @property
    def source(self) -> str:
        return self._url or str(self._path)

    # -- the guard for rpc_blueprint

    def guard(self, method: MethodSpec) -> None:
        from flask import g, request

        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise InvalidToken("this service needs a bearer token from the token dealer "
                               "(Authorization: Bearer <token>)")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        claims = self.verify(token.strip())
        needed = scope_for(method)
        if needed not in claims.scopes:
            raise InsufficientScope(f"the token of client {claims.subject!r} does not grant "
                                    f"the scope {needed!r} that {method.qualified_name} needs")
        g.turnout_token = claims

    # -- verification

    def verify(self, token: str) -> Claims:
        if not isinstance(token, str) or not token:
            raise InvalidToken("no bearer token")
        known = self._verified.get(token)
        if known is not None and self._still_trusted(known):
            self._check_expiry(known.claims.expires_at)
            return known.claims
        claims, kid, keys = self._verify_afresh(token)
        self._remember(token, _Verified(claims, kid, keys))
        return claims

    def _still_trusted(self, known: _Verified) -> bool:
        """Is the key set that verified the token still the current one (same freshness
        checks as a first verification: the file re-read when it changes, the URL's set
        re-fetched when stale), and does it still hold the key? A rotated-out key's tokens
        are then verified afresh, and refused."""
        keys = self._current_keys(known.kid)
        return keys is known.keys and known.kid in keys

    def _remember(self, token: str, verified: _Verified) -> None:
        self._verified[token] = verified
        while len(self._verified) > self._verified_size:
            self._verified.popitem(last=False)

    def _verify_afresh(self, token: str) -> tuple[Claims, str, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise InvalidToken(f"the token is signed with {algorithm!r}; only {ALGORITHM} "
                               "is accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token header names no key (kid)")
        keys = self._current_keys(kid)
        key = keys.get(kid)
        if key is None:
            raise InvalidToken(f"the token is signed by a key the dealer does not publish "
                               f"({kid[:64]!r})")
        try:
            payload = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience,
                issuer=self.issuer,
                # Times are checked below against our clock (PyJWT reads the wall clock).
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False})
        except InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except InvalidAudienceError:
            raise InvalidToken(f"the token is not for this service (audience "
                               f"{self.audience!r})") from None
        except InvalidIssuerError:
            raise InvalidToken(f"the token was not issued by {self.issuer!r}") from None
        except MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim!r} claim") from None
        except DecodeError:
            raise InvalidToken("the bearer token is not a well-formed JWT") from None
        except PyJWTError as exc:
            raise InvalidToken(f"the token was refused: {exc}") from None
        return self._check(payload), kid, keys

    def _check(self, payload: dict[str, Any]) -> Claims:
        now = self._clock()
        times = {}
        for claim in ("exp", "iat", "nbf"):
            value = payload.get(claim)
            if value is None and claim == "nbf":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"the token's {claim!r} claim is not a number")
            times[claim] = float(value)
        self._check_expiry(times["exp"], now)
        if max(times["iat"], times.get("nbf", times["iat"])) > now + self._leeway:
            raise InvalidToken("the token is not valid yet")
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token's 'sub' claim is not a client id")
        scope = payload.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("the token's 'scope' claim is not a space-separated string")
        return Claims(subject=subject, scopes=frozenset(scope.split()),
                      expires_at=times["exp"])

    def _check_expiry(self, expires_at: float, now: float | None = None) -> None:
        if expires_at <= (self._clock() if now is None else now) - self._leeway:
            raise InvalidToken("the token has expired")

    # -- the key set

    def _current_keys(self, kid: str) -> dict[str, Any]:
        """The key set in force (a new dict object whenever it is re-read or re-fetched)."""
        return self._keys_from_file(self._path) if self._path else self._keys_from_url(kid)

    def _keys_from_file(self, path: Path) -> dict[str, Any]:
        try:
            status = path.stat()
            stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
            if stamp != self._file_stamp:
                with self._lock:
                    if stamp != self._file_stamp:
                        self._keys = parse_jwks(path.read_bytes(), str(path))
                        self._file_stamp = stamp
        except OSError as exc:
            raise TransportError(f"the JWKS file {path} cannot be read: "
                                 f"{exc.strerror or type(exc).__name__}") from None
        return self._keys

    def _keys_from_url(self, kid: str) -> dict[str, Any]:
        now = self._clock()
        stale = self._loaded_at is None or now - self._loaded_at >= self._cache_seconds
        unknown = kid not in self._keys
        if stale or unknown:
            with self._lock:
                now = self._clock()
                recent = self._fetched_at is not None and \
                    now - self._fetched_at < UNKNOWN_KID_REFETCH_INTERVAL
                stale = self._loaded_at is None or now - self._loaded_at >= self._cache_seconds
                if not recent and (stale or kid not in self._keys):
                    self._refresh(now)
        if self._loaded_at is None:
            raise TransportError(f"the token dealer's keys could not be fetched from "
                                 f"{self._url}; no token can be verified")
        return self._keys

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        try:
            response = self._get_jwks()
            response.raise_for_status()
            keys = parse_jwks(response.content, self._url or "")
        except (requests.RequestException, TransportError) as exc:
            log.warning("JWKS refresh from %s failed (%s); %s", self._url, exc,
                        "keeping the keys we had" if self._keys else "no keys yet")
            return
        self._keys = keys
        self._loaded_at = now

    def _get_jwks(self) -> requests.Response:
        with telemetry.client_span("GET", self._url or "", "GET jwks") as span:
            try:
                response = self._session.get(self._url, timeout=JWKS_TIMEOUT, headers={
                    "Accept": "application/json", **telemetry.outgoing_headers()})
            except requests.RequestException as exc:
                telemetry.failed(span, exc)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            return response


def parse_jwks(content: bytes, where: str) -> dict[str, Any]:
    """The RS256 signature keys of a JWKS document, by kid (other keys are ignored)."""
    try:
        document = json.loads(content)
    except ValueError:
        raise TransportError(f"the JWKS at {where} is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TransportError(f'the JWKS at {where} is not {{"keys": [...]}}')
    keys = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" \
                or entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=ALGORITHM).key
        except (PyJWKError, PyJWTError, ValueError, TypeError) as exc:
            log.warning("ignoring unusable key %r in the JWKS at %s: %s", kid, where, exc)
    return keys


# Settings every Turnout app shares for service-to-service tokens. A service verifies
# callers against the dealer's JWKS; a caller with a client secret fetches tokens. The
# secret comes from the environment (TURNOUT_CLIENT_SECRET), never from code.
# (bandit takes these names for passwords: they are URLs, a name and empty defaults.)
AUTH_DEFAULTS: dict[str, Any] = {
    # The dealer's key set; a JWKS file path works too.
    "TOKEN_JWKS_URL": "http://127.0.0.1:5020/.well-known/jwks.json",  # nosec B105
    "TOKEN_ISSUER": "turnout-tokendealer",  # nosec B105
    "TOKEN_URL": "http://127.0.0.1:5020/oauth/token",  # nosec B105
    "CLIENT_ID": None,
    "CLIENT_SECRET": None,  # nosec B105
    # Preferred: a 0600 file, so the secret is not in the environment.
    "CLIENT_SECRET_FILE": None,  # nosec B105
}


def verifying_guard(settings: Mapping[str, Any], audience: str) -> Callable[[MethodSpec], None]:
    """The guard a service puts on its contract endpoints: only tokens for `audience`."""
    return TokenVerifier(settings["TOKEN_JWKS_URL"], settings["TOKEN_ISSUER"],
                         audience=audience).guard


def client_tokens(settings: Mapping[str, Any], audience: str) -> ClientCredentials | None:
    """Tokens for calls to `audience`, or None when this process has no client secret:
    its calls then go without a token and a guarded service refuses them (401)."""
    secret = settings.get("CLIENT_SECRET") or _secret_from_file(settings.get("CLIENT_SECRET_FILE"))
    if not secret:
        return None
    return ClientCredentials(settings["TOKEN_URL"], settings["CLIENT_ID"], secret,
                             audience=audience)


def _secret_from_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"TURNOUT_CLIENT_SECRET_FILE {path} cannot be read: "
                          f"{exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"TURNOUT_CLIENT_SECRET_FILE {path} is empty")
    return secret
