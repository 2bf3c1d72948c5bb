"""Identifiers: UUIDv7 generation and the path-id patterns of API.md §0."""

from __future__ import annotations

import os
import time
import uuid

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
ID_MAX_LENGTH = 128
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
VERSION_MAX_LENGTH = 64


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix ms timestamp, version, 74 random bits.

    Python 3.11 has no ``uuid.uuid7``; this is the whole algorithm, so no dependency.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_id() -> str:
    return str(uuid7())
