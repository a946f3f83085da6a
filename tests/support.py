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
