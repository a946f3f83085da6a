"""The dealer's signing keys: RSA 2048 private keys, one PEM file `<kid>.pem` each (0600).

Key ids sort by creation time (`20261128T093000123456789-1a2b3c4d`): the greatest kid
is the signer, and every key in the directory is published in the JWKS, so a token
signed by the previous key still verifies until that key is retired.

Rotation, with no restart (every worker reloads when the directory's listing changes):
  1. `rotate_key(dir)`: a new signer; new tokens carry its kid. Services fetch the JWKS
     again when they meet a kid they do not know.
  2. wait at least TOKEN_LIFETIME seconds, so no live token is signed by the old key;
  3. `retire_key(dir, old_kid)`: it leaves the JWKS (services drop it when their cached
     copy expires, TokenVerifier's cache_seconds).

From a shell: `python -m shims.tokendealer.keys {list,rotate,retire KID} KEYS_DIR`.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent.lock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shims.settings import ConfigError

KEY_SIZE = 2048
ALGORITHM = "RS256"
KID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUFFIX = ".pem"


class KeyringError(ConfigError):
    """A key operation that would break the dealer (or a key file it cannot use)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        return {"kid": self.kid, "kty": "RSA", "alg": ALGORITHM, "use": "sig",
                "n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}


def list_kids(keys_dir: str | os.PathLike[str]) -> list[str]:
    """The key ids in the directory, oldest first (the last one signs)."""
    directory = Path(keys_dir)
    if not directory.is_dir():
        return []
    kids = [entry.name[:-len(SUFFIX)] for entry in os.scandir(directory)
            if entry.name.endswith(SUFFIX) and entry.is_file()
            and KID_PATTERN.match(entry.name[:-len(SUFFIX)])]
    return sorted(kids)


def ensure_key(keys_dir: str | os.PathLike[str]) -> str:
    """The signer's kid, creating the first key if there is none. Safe when several
    workers start together: they serialise on a lock file and end up with one key."""
    kids = list_kids(keys_dir)
    if kids:
        return kids[-1]
    return _add_key(Path(keys_dir), only_if_empty=True)


def rotate_key(keys_dir: str | os.PathLike[str]) -> str:
    """Add a new signing key; returns its kid. Older keys stay published."""
    return _add_key(Path(keys_dir), only_if_empty=False)


def retire_key(keys_dir: str | os.PathLike[str], kid: str) -> None:
    """Remove a key that no longer signs. Refuses the current signer (rotate first)."""
    directory = Path(keys_dir)
    if not KID_PATTERN.match(kid or ""):
        raise KeyringError(f"{kid!r} is not a key id")
    with _locked(directory):
        kids = list_kids(directory)
        if kid not in kids:
            raise KeyringError(f"there is no key {kid!r} in {directory}")
        if kid == kids[-1]:
            detail = "the only key" if len(kids) == 1 else "the current signer"
            raise KeyringError(f"{kid} is {detail}; rotate_key first and retire it once "
                               "no live token is signed by it")
        (directory / f"{kid}{SUFFIX}").unlink()


def load_key(path: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyringError(f"{path} is not a readable unencrypted PEM private key "
                           f"({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < KEY_SIZE:
        raise KeyringError(f"{path} must hold an RSA private key of at least {KEY_SIZE} bits")
    return SigningKey(kid=path.name[:-len(SUFFIX)], private_key=key)


class KeyRing:
    """One worker's view of the keys directory, reloaded whenever its listing changes
    (a rotation or a retirement in any process applies on the next request)."""

    def __init__(self, keys_dir: str | os.PathLike[str]):
        self.keys_dir = Path(keys_dir)
        self._lock = gevent.lock.BoundedSemaphore()
        self._listing: tuple[str, ...] | None = None
        self._keys: tuple[SigningKey, ...] = ()

    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, oldest first; the first call creates a key if there is none."""
        listing = tuple(list_kids(self.keys_dir))
        if not listing:
            ensure_key(self.keys_dir)
            listing = tuple(list_kids(self.keys_dir))
        if listing != self._listing:
            with self._lock:
                if listing != self._listing:
                    self._keys = tuple(load_key(self.keys_dir / f"{kid}{SUFFIX}")
                                       for kid in listing)
                    self._listing = listing
        return self._keys

    def signer(self) -> SigningKey:
        return self.keys()[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys()]}


def _add_key(directory: Path, *, only_if_empty: bool) -> str:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(directory):
        kids = list_kids(directory)
        if only_if_empty and kids:
            return kids[-1]  # another worker created it while we waited for the lock
        kid = _new_kid(after=kids[-1] if kids else "")
        pem = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        # Written privately (mkstemp: 0600) then linked into place: readers never see a
        # half-written key, and link refuses to replace an existing one.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".key.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, directory / f"{kid}{SUFFIX}")
        finally:
            os.unlink(temporary)
    return kid


def _new_kid(after: str) -> str:
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
    kid = f"{stamp}{now % 1_000_000_000:09d}-{secrets.token_hex(4)}"
    if kid <= after:  # the new key would not become the signer
        raise KeyringError(f"the newest key {after!r} sorts after a key made now ({kid}): "
                           "the clock went backwards, or a key was named by hand")
    return kid


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the directory across processes (key creation and removal)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m shims.tokendealer.keys",
                                     description="Manage the token dealer's signing keys.")
    parser.add_argument("action", choices=["list", "rotate", "retire"])
    parser.add_argument("keys_dir")
    parser.add_argument("kid", nargs="?", help="the key to retire")
    args = parser.parse_args(argv)
    try:
        if args.action == "rotate":
            print(rotate_key(args.keys_dir))
        elif args.action == "retire":
            if not args.kid:
                parser.error("retire needs the kid to remove")
            retire_key(args.keys_dir, args.kid)
            print(f"retired {args.kid}")
        else:
            kids = list_kids(args.keys_dir)
            for kid in kids:
                print(kid, "(signer)" if kid == kids[-1] else "")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
