"""Writes monolith/static/favicon.ico: a white "R" on Runnerly's accent orange, rounded.

Drawn here, without an image library, so the icon can be made again (or changed) from this
file alone: two PNG images (16 and 32 pixels) in one ICO file, as browsers expect.

    python scripts/make_favicon.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

ICON = Path(__file__).resolve().parents[1] / "monolith" / "static" / "favicon.ico"
ACCENT, WHITE, CLEAR = (0xD9, 0x48, 0x0F, 0xFF), (0xFF, 0xFF, 0xFF, 0xFF), (0, 0, 0, 0)
LETTER_R = ["1110",  # 4 x 6 cells
            "1001",
            "1110",
            "1100",
            "1010",
            "1001"]


def pixel(x: int, y: int, size: int) -> tuple[int, int, int, int]:
    cell = size // 8  # the letter spans cells 2..5 across and 1..6 down, on an 8 x 8 grid
    column, row = x // cell - 2, y // cell - 1
    if 0 <= row < len(LETTER_R) and 0 <= column < len(LETTER_R[0]) \
            and LETTER_R[row][column] == "1":
        return WHITE
    return CLEAR if _outside_rounded_corner(x, y, size) else ACCENT


def _outside_rounded_corner(x: int, y: int, size: int) -> bool:
    radius = size / 4
    dx = max(radius - x - 0.5, x + 0.5 - (size - radius), 0)
    dy = max(radius - y - 0.5, y + 0.5 - (size - radius), 0)
    return dx * dx + dy * dy > radius * radius


def png(size: int) -> bytes:
    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y, size)) for x in range(size))
                    for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def ico(sizes: tuple[int, ...] = (16, 32)) -> bytes:
    images = [png(size) for size in sizes]
    offset = 6 + 16 * len(images)
    directory = b""
    for size, image in zip(sizes, images, strict=True):
        directory += struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    return struct.pack("<HHH", 0, 1, len(images)) + directory + b"".join(images)


if __name__ == "__main__":
    ICON.write_bytes(ico())
    print(f"wrote {ICON} ({ICON.stat().st_size} bytes)")
