"""Conditional reads and compressed bodies between services.

- ETag / If-None-Match: a service tags every read's answer with a hash of its body
  and answers 304 with no body when the caller already holds that version. The
  client keeps the last answer of each (method, arguments) in a bounded LRU, so an
  unchanged read (`accounts.get_user` runs on every API request) crosses the wire
  as headers only and is not decoded again.
- gzip: answers over `GZIP_MIN_BYTES` (16 KiB) go compressed when the caller accepts it
  (HttpTransport always does, and urllib3 inflates them); request bodies over the
  same size go compressed too, and the service inflates them with a size limit so a
  small "zip bomb" cannot eat its memory. Below 16 KiB the bytes saved are worth less than
  the CPU between services on one host or LAN: a month of runs (2.5 KB) cost 40-85 µs to
  gzip at level 5 through `gzip.compress`, and 7 µs to inflate, for ~2 KB saved (issue 12,
  B10). zlib at level 1
  compresses a 250 KB answer in 0.4 ms against 1.3 ms, to 9.8 KB against 9.1 KB.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from typing import Any

from shims.errors import ValidationError

GZIP_MIN_BYTES = 16 * 1024
GZIP_LEVEL = 1
MAX_INFLATED_BYTES = 32 * 1024 * 1024


def etag_of(body: bytes) -> str:
    """The entity tag, unquoted (Werkzeug quotes it in the header and parses it back)."""
    return hashlib.blake2b(body, digest_size=12).hexdigest()


def compress(body: bytes) -> bytes:
    """gzip (wbits 31: the gzip container, as `Content-Encoding: gzip` says), made by zlib
    directly: gzip.compress builds a file object around it, ~60 µs for nothing."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def inflate(body: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """A gzip body, refused (not exploded) when it inflates past `limit` bytes."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValidationError("the request body says gzip but is not gzip") from exc
    if len(inflated) > limit or decompressor.unconsumed_tail:
        raise ValidationError(f"the request body inflates past {limit} bytes")
    return inflated


class ReadCache:
    """The last answer of each read the client made, by method and arguments (LRU)."""

    def __init__(self, size: int = 512):
        self._size = size
        self._entries: OrderedDict[str, tuple[str, Any]] = OrderedDict()

    @staticmethod
    def key(path: str, payload: Any) -> str:
        # The payload's repr, not a JSON dump with sorted keys (~2.8 us more a read, B9):
        # distinct payloads give distinct text, and equal ones built alike (arguments in
        # the contract's order, to_wire's dicts in field order) equal text; keywords in
        # another order would only cost a second entry, never another call's answer.
        return f"{path}\n{payload!r}"

    def held(self, key: str) -> tuple[str, Any] | None:
        """The etag and value held for `key`, taken together: the caller sends that etag and,
        on a 304, answers that value. Looking the value up again after the 304 would race
        the LRU: other greenlets' reads may evict the entry while this one waits on the wire."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    @staticmethod
    def copy(value: Any) -> Any:
        # Records are frozen; a list is copied so no caller can change the cached one.
        return list(value) if isinstance(value, list) else value

    def put(self, key: str, etag: str, value: Any) -> None:
        self._entries[key] = (etag, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
