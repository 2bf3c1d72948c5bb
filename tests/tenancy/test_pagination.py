"""Keyset pagination of the documented list routes (API.md §0 Lists): clients and domains."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from pie.db import tables
from pie.db.database import Database
from pie.settings import Settings
from tests import factories, tokens
from tests.helpers import assert_envelope

LINK_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def cursor_of(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD_CURSORS = [
    pytest.param("garbage!!", id="not-base64-json"),
    pytest.param("bm90IGpzb24", id="base64-not-json"),
    pytest.param(cursor_of({"a": 1}), id="object"),
    pytest.param(cursor_of(["2026-01-01T00:00:00+00:00"]), id="one-element"),
    pytest.param(cursor_of(["yesterday", "acme"]), id="bad-timestamp"),
    pytest.param(cursor_of(["2026-01-01T00:00:00", "acme"]), id="naive-timestamp"),
    pytest.param(cursor_of(["2026-01-01T00:00:00+00:00", 5]), id="non-string-key"),
    pytest.param(cursor_of([None, "acme"]), id="null-timestamp"),
    pytest.param(cursor_of(["2026-01-01T00:00:00+00:00", "a\u0000b"]), id="nul-in-key"),
    pytest.param(cursor_of(["0001-01-01T00:00:00+05:00", "acme"]), id="underflow-in-utc"),
    pytest.param(cursor_of(["9999-12-31T23:59:59-05:00", "acme"]), id="overflow-in-utc"),
    pytest.param("A" * 600, id="too-long"),
]
BAD_LIMITS = ["0", "-1", "1001", "abc", "1.5", ""]


def next_link(response: httpx.Response) -> str | None:
    """The ``Link`` URL; asserts ``Link`` and ``X-Next-Cursor`` agree."""
    link = response.headers.get("Link")
    cursor = response.headers.get("X-Next-Cursor")
    if link is None:
        assert cursor is None
        return None
    match = LINK_NEXT.match(link)
    assert match, link
    url = match.group("url")
    assert parse_qs(urlsplit(url).query)["cursor"] == [cursor]
    return url


async def walk(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int
) -> tuple[list[list[dict[str, Any]]], list[httpx.Response]]:
    """Follow ``Link: rel="next"`` from the first page until a page has no link."""
    pages: list[list[dict[str, Any]]] = []
    responses: list[httpx.Response] = []
    response = await client.get(path, params={"limit": limit}, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        responses.append(response)
        url = next_link(response)
        if url is None:
            return pages, responses
        assert len(pages) < 50, "pagination does not terminate"
        split = urlsplit(url)
        assert split.path == path
        assert parse_qs(split.query)["limit"] == [str(limit)]
        response = await client.get(f"{split.path}?{split.query}", headers=headers)


def creation_key(item: dict[str, Any], key: str) -> tuple[datetime, str]:
    return datetime.fromisoformat(item["created_at"]), item[key]


class TestClientPages:
    IDS = ("kestrel", "albatross", "petrel", "gannet", "shearwater")

    @pytest.fixture
    async def five(self, db: Database) -> list[str]:
        for client_id in self.IDS:
            await factories.create_client(db, client_id)
        return list(self.IDS)

    async def test_limit_returns_that_many_items_and_a_next_link(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        response = await client.get("/v2/clients", params={"limit": 2}, headers=admin)
        assert response.status_code == 200
        assert len(response.json()) == 2
        url = next_link(response)
        assert url is not None
        assert url.startswith("http://pie.test/v2/clients?")
        assert response.headers["X-Next-Cursor"]

    async def test_following_cursors_walks_every_row_once_in_creation_order(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        pages, responses = await walk(client, "/v2/clients", admin, 2)
        assert [len(p) for p in pages] == [2, 2, 1]
        walked = [c["client_id"] for page in pages for c in page]
        assert walked == five  # created one after the other: creation order
        items = [c for page in pages for c in page]
        keys = [creation_key(c, "client_id") for c in items]
        assert keys == sorted(keys)
        assert "Link" not in responses[-1].headers
        assert "X-Next-Cursor" not in responses[-1].headers
        everything = await client.get("/v2/clients", headers=admin)
        assert items == everything.json()

    @pytest.mark.parametrize("limit", [1, 3, 4])
    async def test_other_page_sizes_cover_the_same_rows(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str], limit: int
    ) -> None:
        pages, _ = await walk(client, "/v2/clients", admin, limit)
        assert all(len(p) == limit for p in pages[:-1])
        assert [c["client_id"] for page in pages for c in page] == five

    async def test_limit_equal_to_row_count_has_no_next_link(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        response = await client.get("/v2/clients", params={"limit": 5}, headers=admin)
        assert [c["client_id"] for c in response.json()] == five
        assert "Link" not in response.headers
        assert "X-Next-Cursor" not in response.headers
        bigger = await client.get("/v2/clients", params={"limit": 1000}, headers=admin)
        assert len(bigger.json()) == 5
        assert "Link" not in bigger.headers

    async def test_equal_created_at_is_ordered_by_id_across_pages(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], five: list[str]
    ) -> None:
        same = datetime(2026, 5, 18, 9, 0, 0, 123456, tzinfo=UTC)
        async with db.transaction() as session:
            await session.execute(update(tables.Client).values(created_at=same))
        pages, _ = await walk(client, "/v2/clients", admin, 2)
        assert [c["client_id"] for page in pages for c in page] == sorted(five)
        assert {c["created_at"] for page in pages for c in page} == {"2026-05-18T09:00:00.123456Z"}

    async def test_cursor_ties_break_by_id_within_one_timestamp_group(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], five: list[str]
    ) -> None:
        early = datetime(2026, 1, 1, tzinfo=UTC)
        late = datetime(2026, 1, 2, tzinfo=UTC)
        async with db.transaction() as session:
            await session.execute(update(tables.Client).values(created_at=late))
            await session.execute(
                update(tables.Client)
                .where(tables.Client.client_id.in_(["petrel", "kestrel"]))
                .values(created_at=early)
            )
        pages, _ = await walk(client, "/v2/clients", admin, 1)
        assert [c["client_id"] for page in pages for c in page] == [
            "kestrel",
            "petrel",
            "albatross",
            "gannet",
            "shearwater",
        ]

    async def test_no_limit_returns_every_row_without_link(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for index in range(105):
            await factories.create_client(db, f"bulk-{index:03d}")
        response = await client.get("/v2/clients", headers=admin)
        assert response.status_code == 200
        assert [c["client_id"] for c in response.json()] == [
            f"bulk-{index:03d}" for index in range(105)
        ]
        assert "Link" not in response.headers
        assert "X-Next-Cursor" not in response.headers

    async def test_cursor_without_limit_returns_the_rest(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        first = await client.get("/v2/clients", params={"limit": 2}, headers=admin)
        rest = await client.get(
            "/v2/clients", params={"cursor": first.headers["X-Next-Cursor"]}, headers=admin
        )
        assert rest.status_code == 200
        assert [c["client_id"] for c in rest.json()] == five[2:]
        assert "Link" not in rest.headers

    async def test_pages_are_filtered_to_the_callers_clients(
        self, client: httpx.AsyncClient, settings: Settings, five: list[str]
    ) -> None:
        user = tokens.human(settings, "client:kestrel", "client:petrel", "client:shearwater")
        pages, _ = await walk(client, "/v2/clients", user, 2)
        assert [[c["client_id"] for c in page] for page in pages] == [
            ["kestrel", "petrel"],
            ["shearwater"],
        ]

    @pytest.mark.parametrize("limit", BAD_LIMITS)
    async def test_bad_limit_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str], limit: str
    ) -> None:
        response = await client.get("/v2/clients", params={"limit": limit}, headers=admin)
        assert "limit" in assert_envelope(response, 400)["message"]

    @pytest.mark.parametrize("cursor", BAD_CURSORS)
    async def test_bad_cursor_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str], cursor: str
    ) -> None:
        response = await client.get(
            "/v2/clients", params={"limit": 2, "cursor": cursor}, headers=admin
        )
        assert "cursor" in assert_envelope(response, 400)["message"]

    async def test_no_rows_is_an_empty_array_without_link(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        for params in ({}, {"limit": 2}):
            response = await client.get("/v2/clients", params=params, headers=admin)
            assert response.status_code == 200
            assert response.json() == []
            assert "Link" not in response.headers
            assert "X-Next-Cursor" not in response.headers


class TestDomainPages:
    IDS = ("victoria", "tasmania", "queensland", "nsw", "south_australia")

    @pytest.fixture
    async def five(self, db: Database) -> list[str]:
        await factories.create_client(db, "ferries")
        await factories.create_client(db, "noise")
        for domain_id in self.IDS:
            await factories.create_domain(db, "ferries", domain_id)
            await factories.create_domain(db, "noise", f"noise-{domain_id}")
        return list(self.IDS)

    async def test_limit_returns_that_many_items_and_a_next_link(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        response = await client.get(
            "/v2/clients/ferries/domains", params={"limit": 2}, headers=admin
        )
        assert response.status_code == 200
        assert [d["domain_id"] for d in response.json()] == five[:2]
        url = next_link(response)
        assert url is not None
        assert url.startswith("http://pie.test/v2/clients/ferries/domains?")

    async def test_following_cursors_walks_every_domain_of_the_client_once(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        pages, responses = await walk(client, "/v2/clients/ferries/domains", admin, 2)
        assert [len(p) for p in pages] == [2, 2, 1]
        items = [d for page in pages for d in page]
        assert [d["domain_id"] for d in items] == five
        assert {d["client_id"] for d in items} == {"ferries"}
        keys = [creation_key(d, "domain_id") for d in items]
        assert keys == sorted(keys)
        assert "Link" not in responses[-1].headers
        everything = await client.get("/v2/clients/ferries/domains", headers=admin)
        assert items == everything.json()

    async def test_equal_created_at_is_ordered_by_id_across_pages(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str], five: list[str]
    ) -> None:
        same = datetime(2026, 5, 18, 9, 0, tzinfo=UTC)
        async with db.transaction() as session:
            await session.execute(update(tables.Domain).values(created_at=same))
        pages, _ = await walk(client, "/v2/clients/ferries/domains", admin, 2)
        assert [d["domain_id"] for page in pages for d in page] == sorted(five)

    async def test_a_cursor_from_another_client_never_leaks_its_domains(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        noise = await client.get("/v2/clients/noise/domains", params={"limit": 1}, headers=admin)
        cursor = noise.headers["X-Next-Cursor"]
        response = await client.get(
            "/v2/clients/ferries/domains", params={"cursor": cursor}, headers=admin
        )
        assert response.status_code == 200
        assert {d["client_id"] for d in response.json()} <= {"ferries"}

    async def test_no_limit_returns_every_domain_without_link(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str]
    ) -> None:
        response = await client.get("/v2/clients/ferries/domains", headers=admin)
        assert [d["domain_id"] for d in response.json()] == five
        assert "Link" not in response.headers
        assert "X-Next-Cursor" not in response.headers

    @pytest.mark.parametrize("limit", BAD_LIMITS)
    async def test_bad_limit_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str], limit: str
    ) -> None:
        response = await client.get(
            "/v2/clients/ferries/domains", params={"limit": limit}, headers=admin
        )
        assert "limit" in assert_envelope(response, 400)["message"]

    @pytest.mark.parametrize("cursor", BAD_CURSORS)
    async def test_bad_cursor_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], five: list[str], cursor: str
    ) -> None:
        response = await client.get(
            "/v2/clients/ferries/domains", params={"limit": 2, "cursor": cursor}, headers=admin
        )
        assert "cursor" in assert_envelope(response, 400)["message"]

    async def test_no_domains_is_an_empty_array_without_link(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_client(db, "empty")
        for params in ({}, {"limit": 2}):
            response = await client.get("/v2/clients/empty/domains", params=params, headers=admin)
            assert response.status_code == 200
            assert response.json() == []
            assert "Link" not in response.headers
            assert "X-Next-Cursor" not in response.headers

    async def test_missing_client_is_404_not_an_empty_page(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/clients/ghost/domains", params={"limit": 2}, headers=admin)
        assert_envelope(response, 404)
