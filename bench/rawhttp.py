"""A lean HTTP/1.1 keep-alive client for the open-loop PIE driver (stdlib asyncio only).

httpx spends about a millisecond of CPU per request. At 200 submits/s on a 2-core machine
that is a fifth of a core taken from the server being measured, and the client's own queue
shows up as server latency. This client writes pre-built request bytes on pooled
keep-alive connections and reads the answer by ``Content-Length`` (uvicorn always sends
it for PIE's JSON), which costs a few tens of microseconds. It is a measuring tool, not a
general client: no redirects, no chunked bodies, no TLS.

A connection left idle longer than ``IDLE_S`` is closed rather than reused: uvicorn closes
keep-alive connections after 5 s of silence (``--timeout-keep-alive``), and a request
written to one it has just closed would read nothing back.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

IDLE_S = 3.0
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


class RawClient:
    """POSTs JSON to one server over a pool of keep-alive connections that grows on demand,
    so a request is never queued behind another in the client."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.idle: list[_Connection] = []  # the most recently used last

    def request(self, path: str, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; the status and body of its answer."""
        reader, writer = await self._connection()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return status, body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection that the server has not dropped, or a
        new one."""
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def aclose(self) -> None:
        for _reader, writer, _used in self.idle:
            writer.close()
        self.idle.clear()
