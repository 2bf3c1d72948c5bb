"""Bodies Python's json takes but JSON and the databases do not: 400, nothing written."""

from __future__ import annotations

import httpx
import pytest

from pie.api.requests import parse_strict
from tests.helpers import assert_envelope

CASES = [
    b'{"client_id": "c1", "name": NaN}',
    b'{"client_id": "c1", "name": "x", "extra": Infinity}',
    b'{"client_id": "c1", "name": -Infinity}',
    b'{"client_id": "c1", "name": "a\\u0000b"}',
    b'{"client_id": "c1", "name": "ok", "k\\u0000": 1}',
]


@pytest.mark.parametrize("body", CASES)
async def test_non_json_constants_and_nul_are_400(
    client: httpx.AsyncClient, admin: dict[str, str], body: bytes
) -> None:
    response = await client.post(
        "/v2/clients", content=body, headers={**admin, "content-type": "application/json"}
    )
    message = assert_envelope(response, 400)["message"]
    assert "malformed JSON" in message
    assert (await client.get("/v2/clients/c1", headers=admin)).status_code == 404


async def test_deep_nesting_is_400_not_500(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = b'{"client_id": "c1", "name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await client.post(
        "/v2/clients", content=body, headers={**admin, "content-type": "application/json"}
    )
    assert_envelope(response, 400)


def test_an_escaped_backslash_before_u0000_is_an_ordinary_string() -> None:
    assert parse_strict(b'{"a": "\\\\u0000"}') == {"a": "\\u0000"}
