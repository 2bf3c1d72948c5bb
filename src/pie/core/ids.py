"""Identifiers: UUIDv7 generation and the path-id patterns of API.md §0."""

from __future__ import annotations

import os
import threading
import time
import uuid

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
ID_MAX_LENGTH = 128
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
VERSION_MAX_LENGTH = 64


_ENTROPY_BYTES = 4096


class _Entropy(threading.local):
    """Random bytes read from the OS 4 KiB at a time, per thread.

    ``os.urandom`` releases the GIL for its system call, and on a busy server getting the
    GIL back after every id cost more than the rest of the id (bench/README.md). The bytes
    are the same CSPRNG output, only fetched in bulk; a forked child starts a fresh pool so
    it never repeats its parent's ids.
    """

    buffer = b""
    offset = 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.buffer):
            self.buffer, self.offset = os.urandom(_ENTROPY_BYTES), 0
        start, self.offset = self.offset, self.offset + count
        return self.buffer[start : self.offset]


_entropy = _Entropy()
os.register_at_fork(after_in_child=lambda: setattr(_entropy, "buffer", b""))


def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7: 48-bit Unix ms timestamp, version, 74 random bits.

    Python 3.11 has no ``uuid.uuid7``; this is the whole algorithm, so no dependency.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_entropy.take(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_id() -> str:
    return str(uuid7())
