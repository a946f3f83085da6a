"""Helpers shared by test layers that start real processes."""

from __future__ import annotations

import base64
import socket
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_HASH = "pbkdf2:sha256:1000"  # real hashing, cheap enough for hundreds of sign-ups
PASSWORD = "correct-horse-9"


def basic_auth(email: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Service-to-service tokens (shims/auth.py, extracted/tokendealer) -------------------

TOKEN_ISSUER = "turnout-tokendealer"
TOKEN_NOW = 1_800_000_000.0  # a fixed "now" for tests that inject a clock
_RSA_KEYS: dict = {}


def rsa_private_key(name: str = "a"):
    """A 2048-bit RSA key per name, made once per test session (generation is slow)."""
    if name not in _RSA_KEYS:
        from cryptography.hazmat.primitives.asymmetric import rsa

        _RSA_KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _RSA_KEYS[name]


def jwks_of(keys: dict) -> dict:
    """A JWKS document publishing the public half of {kid: private_key}."""
    import json

    import jwt

    published = []
    for kid, key in keys.items():
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        published.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": published}


def write_jwks(path: Path, keys: dict) -> Path:
    """Write (atomically, as a new inode so readers notice) a JWKS file for {kid: key}."""
    import json
    import os

    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(jwks_of(keys)))
    os.replace(temporary, path)
    return path


def mint_token(key=None, kid: str = "a", *, issuer: str = TOKEN_ISSUER,
               audience: str = "dataservice", subject: str = "monolith",
               scope: str = "runs:read runs:write", now: float = TOKEN_NOW,
               lifetime: int = 300, drop: tuple[str, ...] = (), **extra) -> str:
    """An RS256 token as the dealer would sign it; `drop` leaves claims out, `extra`
    overrides or adds claims (e.g. nbf)."""
    import uuid

    import jwt

    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": int(now),
              "nbf": int(now), "exp": int(now) + lifetime, "jti": str(uuid.uuid4()),
              "scope": scope, **extra}
    for name in drop:
        claims.pop(name, None)
    return jwt.encode(claims, key if key is not None else rsa_private_key(kid),
                      algorithm="RS256", headers={"kid": kid})
