"""A lean HTTP/1.1 keep-alive client for the open-loop PIE driver (stdlib asyncio only).

httpx spends about a millisecond of CPU per request. At 200 submits/s on a 2-core machine
that is a fifth of a core taken from the server being measured, and the client's own queue
shows up as server latency. This client writes pre-built request bytes on pooled
keep-alive connections and reads the answer by ``Content-Length`` (uvicorn always sends
it for PIE's JSON), which costs a few tens of microseconds. It is a measuring tool, not a
general client: no redirects, no chunked bodies, no TLS.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class RawClient:
    """POSTs JSON to one server over a pool of keep-alive connections that grows on demand,
    so a request is never queued behind another in the client."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request(self, path: str, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; the status and body of its answer."""
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
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
            self.idle.append((reader, writer))
        return status, body

    async def aclose(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()
