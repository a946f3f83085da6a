"""shims/auth.py: the token source callers use and the verifier services use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs

import gevent
import pytest
import requests
from flask import Flask, g

from shims.auth import ClientCredentials, Claims, TokenVerifier, scope_for
from shims.contract import MethodSpec
from shims.errors import InsufficientScope, InvalidToken, TransportError

from support import (TOKEN_ISSUER, TOKEN_NOW, ManualClock, jwks_of, mint_token, rsa_private_key,
                     write_jwks)

TOKEN_URL = "http://dealer.test/oauth/token"
JWKS_URL = "http://dealer.test/.well-known/jwks.json"
SECRET = "s3cret-value-that-must-never-leak"


def method(contract: str = "runs", kind: str = "write", name: str = "add") -> MethodSpec:
    return MethodSpec(contract=contract, name=name, kind=kind, params=(), returns=None, doc="")


def test_scope_for_names_the_contract_and_the_kind():
    assert scope_for(method("runs", "write")) == "runs:write"
    assert scope_for(method("accounts", "read")) == "accounts:read"


# --- ClientCredentials --------------------------------------------------------------------

def token_answer(token: str = "t1", expires_in: int = 300) -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
            "scope": "runs:read runs:write"}


def credentials(**kwargs) -> ClientCredentials:
    kwargs.setdefault("clock", ManualClock(TOKEN_NOW))
    return ClientCredentials(TOKEN_URL, "monolith", SECRET, "dataservice",
                             kwargs.pop("scopes", ["runs:write", "runs:read"]), **kwargs)


def test_fetches_with_basic_auth_and_the_client_credentials_grant(requests_mock):
    requests_mock.post(TOKEN_URL, json=token_answer())
    assert credentials().headers() == {"Authorization": "Bearer t1"}
    sent = requests_mock.last_request
    assert parse_qs(sent.text) == {"grant_type": ["client_credentials"],
                                   "audience": ["dataservice"],
                                   "scope": ["runs:read runs:write"]}
    scheme, encoded = sent.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"monolith:{SECRET}"


def test_no_scopes_asks_for_every_granted_scope(requests_mock):
    requests_mock.post(TOKEN_URL, json=token_answer())
    credentials(scopes=None).headers()
    assert "scope" not in parse_qs(requests_mock.last_request.text)


def test_caches_the_token_until_shortly_before_it_expires(requests_mock):
    clock = ManualClock(TOKEN_NOW)
    requests_mock.post(TOKEN_URL, [{"json": token_answer("t1")}, {"json": token_answer("t2")}])
    tokens = credentials(clock=clock, refresh_margin=30.0)
    assert tokens.headers()["Authorization"] == "Bearer t1"
    clock.now += 269
    assert tokens.headers()["Authorization"] == "Bearer t1"
    assert requests_mock.call_count == 1
    clock.now += 1  # 30 s before expiry
    assert tokens.headers()["Authorization"] == "Bearer t2"
    assert requests_mock.call_count == 2


def test_a_token_shorter_than_the_margin_is_kept_for_half_its_life(requests_mock):
    clock = ManualClock(TOKEN_NOW)
    requests_mock.post(TOKEN_URL, json=token_answer(expires_in=20))
    tokens = credentials(clock=clock, refresh_margin=30.0)
    tokens.headers()
    clock.now += 9
    tokens.headers()
    assert requests_mock.call_count == 1
    clock.now += 1
    tokens.headers()
    assert requests_mock.call_count == 2


def test_twenty_greenlets_share_one_fetch(requests_mock):
    def slow_dealer(request, context):
        gevent.sleep(0.05)  # every greenlet asks while the fetch is in flight
        return json.dumps(token_answer())

    requests_mock.post(TOKEN_URL, text=slow_dealer)
    tokens = credentials()
    greenlets = [gevent.spawn(tokens.headers) for _ in range(20)]
    # A bound for a hang, not a timing: on a busy machine twenty greenlets took over 5 s.
    gevent.joinall(greenlets, timeout=120, raise_error=True)
    assert all(greenlet.ready() for greenlet in greenlets)
    assert {greenlet.value["Authorization"] for greenlet in greenlets} == {"Bearer t1"}
    assert requests_mock.call_count == 1


def test_invalidate_drops_the_cached_token(requests_mock):
    requests_mock.post(TOKEN_URL, [{"json": token_answer("t1")}, {"json": token_answer("t2")}])
    tokens = credentials()
    assert tokens.headers()["Authorization"] == "Bearer t1"
    tokens.invalidate()
    assert tokens.headers()["Authorization"] == "Bearer t2"
    assert requests_mock.call_count == 2


@pytest.mark.parametrize("failure", [requests.ConnectionError(f"refused {SECRET}"),
                                     requests.ConnectTimeout(f"slow {SECRET}")])
def test_a_dealer_that_is_down_is_a_transport_error_without_the_secret(requests_mock,
                                                                       failure):
    requests_mock.post(TOKEN_URL, exc=failure)
    with pytest.raises(TransportError) as raised:
        credentials().headers()
    assert "dealer.test" in raised.value.message
    assert SECRET not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


DROPPED = requests.ConnectionError("('Connection aborted.', RemoteDisconnected('Remote end "
                                   "closed connection without response'))")


def test_a_connection_the_dealer_dropped_unanswered_is_asked_again_once(requests_mock):
    """A dealer reload closes kept-alive connections: the first request on one fails
    before any answer. A token request is safe to send twice."""
    requests_mock.post(TOKEN_URL, [{"exc": DROPPED}, {"json": token_answer("t9")}])
    assert credentials().headers() == {"Authorization": "Bearer t9"}
    assert requests_mock.call_count == 2


def test_a_second_drop_is_a_transport_error(requests_mock):
    requests_mock.post(TOKEN_URL, exc=DROPPED)
    with pytest.raises(TransportError):
        credentials().headers()
    assert requests_mock.call_count == 2


@pytest.mark.parametrize("failure", [requests.ConnectionError("Connection refused"),
                                     requests.ConnectTimeout("slow"),
                                     requests.ReadTimeout("slow")])
def test_refused_and_timed_out_requests_are_not_sent_again(requests_mock, failure):
    requests_mock.post(TOKEN_URL, exc=failure)
    with pytest.raises(TransportError):
        credentials().headers()
    assert requests_mock.call_count == 1


def test_a_refusal_is_a_transport_error_naming_the_error_not_the_secret(requests_mock):
    requests_mock.post(TOKEN_URL, status_code=401, json={
        "error": "invalid_client", "error_description": "client authentication failed"})
    with pytest.raises(TransportError) as raised:
        credentials().headers()
    assert "invalid_client" in raised.value.message
    assert "monolith" in raised.value.message
    assert SECRET not in raised.value.message
    assert SECRET not in repr(credentials())


@pytest.mark.parametrize("answer", [{"status_code": 502, "text": "<html>bad gateway</html>"},
                                    {"status_code": 200, "json": {"token_type": "Bearer"}},
                                    {"status_code": 200, "json": ["t1"]}])
def test_a_dealer_answering_nonsense_is_a_transport_error(requests_mock, answer):
    requests_mock.post(TOKEN_URL, **answer)
    with pytest.raises(TransportError):
        credentials().headers()


def test_the_secret_is_required():
    with pytest.raises(ValueError):
        ClientCredentials(TOKEN_URL, "monolith", "", "dataservice")


# --- TokenVerifier: a JWKS file -----------------------------------------------------------

@pytest.fixture
def jwks_file(tmp_path):
    return write_jwks(tmp_path / "jwks.json", {"a": rsa_private_key("a")})


@pytest.fixture
def clock():
    return ManualClock(TOKEN_NOW)


@pytest.fixture
def verifier(jwks_file, clock):
    return TokenVerifier(jwks_file, TOKEN_ISSUER, "dataservice", clock=clock)


def test_a_good_token_gives_its_claims(verifier):
    claims = verifier.verify(mint_token())
    assert claims == Claims(subject="monolith", scopes=frozenset({"runs:read", "runs:write"}),
                            expires_at=TOKEN_NOW + 300)


def test_an_expired_token_is_refused_after_the_leeway(verifier, clock):
    token = mint_token()
    clock.now += 300 + 4
    verifier.verify(token)
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_token_not_valid_yet_is_refused(verifier):
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(mint_token(nbf=int(TOKEN_NOW) + 60))
    with pytest.raises(InvalidToken, match="not valid yet"):
        verifier.verify(mint_token(now=TOKEN_NOW + 60))


def test_a_token_from_another_issuer_is_refused(verifier):
    with pytest.raises(InvalidToken, match="issued by"):
        verifier.verify(mint_token(issuer="someone-else"))


def test_a_token_for_another_audience_is_refused(verifier):
    with pytest.raises(InvalidToken, match="not for this service"):
        verifier.verify(mint_token(audience="reports"))


def test_a_tampered_payload_is_refused(verifier):
    header, payload, signature = mint_token(scope="runs:read").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "runs:read runs:write"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(f"{header}.{forged}.{signature}")


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(verifier):
    with pytest.raises(InvalidToken, match="signature"):
        verifier.verify(mint_token(rsa_private_key("b"), kid="a"))


def test_a_token_signed_by_an_unknown_key_is_refused(verifier):
    with pytest.raises(InvalidToken, match="key the dealer does not publish"):
        verifier.verify(mint_token(kid="b"))


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_claims() -> dict:
    return {"iss": TOKEN_ISSUER, "sub": "monolith", "aud": "dataservice", "iat": int(TOKEN_NOW),
            "exp": int(TOKEN_NOW) + 300, "scope": "runs:read runs:write"}


def test_alg_none_is_refused(verifier):
    token = f"{b64({'alg': 'none', 'kid': 'a', 'typ': 'JWT'})}.{b64(unsigned_claims())}."
    with pytest.raises(InvalidToken, match="only RS256"):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(verifier):
    """The classic confusion: an HMAC keyed with the published RSA public key."""
    from cryptography.hazmat.primitives import serialization

    public_pem = rsa_private_key("a").public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'a', 'typ': 'JWT'})}.{b64(unsigned_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="only RS256"):
        verifier.verify(f"{signing_input}.{b64(mac)}")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
def test_a_token_missing_a_required_claim_is_refused(verifier, claim):
    with pytest.raises(InvalidToken, match=claim):
        verifier.verify(mint_token(drop=(claim,)))


@pytest.mark.parametrize("claims", [{"exp": "tomorrow"}, {"iat": True}, {"scope": ["runs:read"]},
                                    {"sub": ""}])
def test_malformed_claims_are_refused(verifier, claims):
    with pytest.raises(InvalidToken):
        verifier.verify(mint_token(**claims))


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "...", "eyJ9.eyJ9.e30",
                                     f"{b64({'alg': 'RS256'})}.{b64(unsigned_claims())}.AAAA"])
def test_garbage_is_refused(verifier, garbage):
    with pytest.raises(InvalidToken):
        verifier.verify(garbage)


def test_a_token_without_kid_is_refused(verifier):
    import jwt

    token = jwt.encode(unsigned_claims(), rsa_private_key("a"), algorithm="RS256")
    with pytest.raises(InvalidToken, match="kid"):
        verifier.verify(token)


def test_the_jwks_file_is_read_again_when_it_changes(verifier, jwks_file):
    verifier.verify(mint_token(kid="a"))
    write_jwks(jwks_file, {"a": rsa_private_key("a"), "b": rsa_private_key("b")})
    assert verifier.verify(mint_token(kid="b")).subject == "monolith"
    write_jwks(jwks_file, {"b": rsa_private_key("b")})
    with pytest.raises(InvalidToken, match="does not publish"):
        verifier.verify(mint_token(kid="a"))


def test_a_missing_jwks_file_is_a_transport_error_not_a_bad_token(tmp_path):
    verifier = TokenVerifier(tmp_path / "nowhere.json", TOKEN_ISSUER, "dataservice")
    with pytest.raises(TransportError, match="cannot be read"):
        verifier.verify(mint_token())


# --- TokenVerifier: the dealer's JWKS URL -------------------------------------------------

def url_verifier(clock: ManualClock, **kwargs) -> TokenVerifier:
    return TokenVerifier(JWKS_URL, TOKEN_ISSUER, "dataservice", clock=clock, **kwargs)


def test_no_fetch_before_the_first_verification(requests_mock, clock):
    url_verifier(clock)  # an unregistered URL would raise if it were fetched
    assert requests_mock.call_count == 0


def test_the_jwks_is_fetched_once_and_cached(requests_mock, clock):
    requests_mock.get(JWKS_URL, json=jwks_of({"a": rsa_private_key("a")}))
    verifier = url_verifier(clock, cache_seconds=300)
    for _ in range(3):
        verifier.verify(mint_token())
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.timeout == (0.5, 2.0)
    clock.now += 299
    verifier.verify(mint_token(now=clock.now))
    assert requests_mock.call_count == 1
    clock.now += 1
    verifier.verify(mint_token(now=clock.now))
    assert requests_mock.call_count == 2


def test_an_unknown_kid_refetches_once_and_finds_a_rotated_key(requests_mock, clock):
    a, b = rsa_private_key("a"), rsa_private_key("b")
    requests_mock.get(JWKS_URL, [{"json": jwks_of({"a": a})}, {"json": jwks_of({"a": a, "b": b})}])
    verifier = url_verifier(clock)
    verifier.verify(mint_token(kid="a"))
    clock.now += 11
    assert verifier.verify(mint_token(kid="b", now=clock.now)).subject == "monolith"
    assert requests_mock.call_count == 2
    verifier.verify(mint_token(kid="a", now=clock.now))  # both keys known now
    assert requests_mock.call_count == 2


def test_refetching_for_unknown_kids_is_rate_limited(requests_mock, clock):
    requests_mock.get(JWKS_URL, json=jwks_of({"a": rsa_private_key("a")}))
    verifier = url_verifier(clock)
    verifier.verify(mint_token())
    for forged in ("x1", "x2", "x3"):  # within 10 s of the last fetch: no fetch at all
        with pytest.raises(InvalidToken, match="does not publish"):
            verifier.verify(mint_token(rsa_private_key("b"), kid=forged))
    assert requests_mock.call_count == 1
    clock.now += 10
    for forged in ("y1", "y2"):  # one refetch, then quiet again for 10 s
        with pytest.raises(InvalidToken):
            verifier.verify(mint_token(rsa_private_key("b"), kid=forged, now=clock.now))
    assert requests_mock.call_count == 2


def test_a_dealer_down_before_any_keys_is_a_transport_error(requests_mock, clock):
    requests_mock.get(JWKS_URL, exc=requests.ConnectionError("down"))
    with pytest.raises(TransportError, match="could not be fetched"):
        url_verifier(clock).verify(mint_token())


def test_a_failed_refresh_keeps_the_keys_it_had(requests_mock, clock):
    requests_mock.get(JWKS_URL, [{"json": jwks_of({"a": rsa_private_key("a")})},
                                 {"status_code": 503, "text": "down"}])
    verifier = url_verifier(clock, cache_seconds=60)
    verifier.verify(mint_token())
    clock.now += 61
    assert verifier.verify(mint_token(now=clock.now)).subject == "monolith"
    assert requests_mock.call_count == 2


def test_keys_that_are_not_rs256_signature_keys_are_ignored(requests_mock, clock):
    document = jwks_of({"a": rsa_private_key("a"), "enc": rsa_private_key("b")})
    document["keys"][1]["use"] = "enc"
    document["keys"].append({"kty": "oct", "kid": "hmac", "k": b64(b"shared")})
    requests_mock.get(JWKS_URL, json=document)
    verifier = url_verifier(clock)
    verifier.verify(mint_token())
    with pytest.raises(InvalidToken, match="does not publish"):
        verifier.verify(mint_token(rsa_private_key("b"), kid="enc"))


# --- verified tokens kept -----------------------------------------------------------------

def counting_decodes(monkeypatch) -> list[str]:
    import jwt

    decoded: list[str] = []
    real = jwt.decode

    def decode(token, *args, **kwargs):
        decoded.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return decoded


def test_a_token_seen_before_is_not_verified_again(verifier, monkeypatch):
    decoded = counting_decodes(monkeypatch)
    token = mint_token()
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert verifier.verify(mint_token(subject="other")).subject == "other"
    assert len(decoded) == 2


def test_a_kept_token_is_refused_once_it_expires(verifier, clock):
    token = mint_token(lifetime=60)
    verifier.verify(token)
    clock.now += 64  # within the 5 s leeway
    verifier.verify(token)
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_kept_token_signed_by_a_key_rotated_out_is_refused(jwks_file, verifier):
    token = mint_token(kid="a")
    verifier.verify(token)
    write_jwks(jwks_file, {"b": rsa_private_key("b")})
    with pytest.raises(InvalidToken, match="does not publish"):
        verifier.verify(token)


def test_a_new_key_set_verifies_kept_tokens_afresh(jwks_file, verifier, monkeypatch):
    decoded = counting_decodes(monkeypatch)
    token = mint_token(kid="a")
    verifier.verify(token)
    write_jwks(jwks_file, {"a": rsa_private_key("a"), "b": rsa_private_key("b")})
    verifier.verify(token)
    verifier.verify(token)
    assert len(decoded) == 2


def test_refused_tokens_are_not_kept_and_the_kept_set_is_bounded(jwks_file, clock,
                                                                  monkeypatch):
    verifier = TokenVerifier(jwks_file, TOKEN_ISSUER, "dataservice", clock=clock,
                             verified_tokens=2)
    forged = mint_token(rsa_private_key("b"), kid="a")
    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature"):
            verifier.verify(forged)
    decoded = counting_decodes(monkeypatch)
    tokens = [mint_token(subject=f"client{i}") for i in range(3)]
    for token in tokens:
        verifier.verify(token)
    verifier.verify(tokens[2])  # kept
    verifier.verify(tokens[0])  # the oldest, dropped: verified again
    assert len(decoded) == 4


def test_a_kept_token_is_still_held_to_the_method_scope(flask_app, verifier):
    headers = {"Authorization": f"Bearer {mint_token(scope='runs:read')}"}
    guard_with(flask_app, verifier, headers, method("runs", "read"))
    with pytest.raises(InsufficientScope, match="runs:write"):
        guard_with(flask_app, verifier, headers, method("runs", "write"))


# --- guard ---------------------------------------------------------------------------------

@pytest.fixture
def flask_app():
    return Flask("guarded")


def guard_with(flask_app, verifier, headers, spec=None):
    with flask_app.test_request_context("/rpc/runs/add", method="POST", headers=headers):
        verifier.guard(spec or method("runs", "write"))
        return g.turnout_token


def test_guard_passes_a_token_with_the_scope(flask_app, verifier):
    claims = guard_with(flask_app, verifier, {"Authorization": f"Bearer {mint_token()}"})
    assert claims.subject == "monolith"


def test_guard_refuses_a_call_without_a_token(flask_app, verifier):
    with pytest.raises(InvalidToken, match="needs a bearer token"):
        guard_with(flask_app, verifier, {})


@pytest.mark.parametrize("header", ["Basic bW9ubw==", "Bearer", "Bearer   ", "Token abc"])
def test_guard_refuses_other_schemes(flask_app, verifier, header):
    with pytest.raises(InvalidToken, match="Bearer <token>"):
        guard_with(flask_app, verifier, {"Authorization": header})


def test_guard_refuses_a_bad_token(flask_app, verifier):
    with pytest.raises(InvalidToken):
        guard_with(flask_app, verifier, {"Authorization": "Bearer not-a-jwt"})


def test_guard_names_the_missing_scope(flask_app, verifier):
    headers = {"Authorization": f"Bearer {mint_token(scope='runs:read accounts:write')}"}
    with pytest.raises(InsufficientScope, match="'runs:write'") as raised:
        guard_with(flask_app, verifier, headers)
    assert raised.value.status == 403 and raised.value.code == "insufficient_scope"
