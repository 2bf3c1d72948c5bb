"""GET …/service/{s} and GET …/services (API.md §8.1, §0 lists)."""

from __future__ import annotations

import pytest

from tests.helpers import assert_envelope
from tests.tenant_services.factories import FULL, MINIMAL, Tenant, future


class TestGetService:
    async def test_returns_the_documented_fields(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1", FULL)
        service = await tenant.service("svc-1")
        assert set(service) == {
            "domain_id",
            "service_id",
            "status",
            "departure_datetime",
            "provided_features",
            "resolved_features",
            "created_at",
            "updated_at",
        }
        assert service["provided_features"] == FULL

    async def test_missing_service_is_404_naming_it(self, tenant: Tenant) -> None:
        response = await tenant.http.get(tenant.service_url("nope"), headers=tenant.headers)
        body = assert_envelope(response, 404)
        assert "nope" in body["message"]

    async def test_service_of_another_domain_is_404(self, tenant: Tenant) -> None:
        other = Tenant(tenant.http, tenant.admin, tenant.headers, domain_id="mainland")
        await other.create_domain()
        await other.init_ok("svc-1")
        response = await tenant.http.get(tenant.service_url("svc-1"), headers=tenant.headers)
        assert_envelope(response, 404)

    async def test_missing_domain_is_404(self, tenant: Tenant) -> None:
        response = await tenant.http.get(
            f"{tenant.client_url}/domains/nowhere/service/svc-1", headers=tenant.headers
        )
        body = assert_envelope(response, 404)
        assert "nowhere" in body["message"]

    async def test_missing_client_is_404(self, tenant: Tenant) -> None:
        response = await tenant.http.get(
            "/v2/clients/ghost/domains/island/service/svc-1", headers=tenant.admin
        )
        body = assert_envelope(response, 404)
        assert "ghost" in body["message"]

    async def test_invalid_service_id_is_400(self, tenant: Tenant) -> None:
        response = await tenant.http.get(tenant.service_url("bad id!"), headers=tenant.headers)
        assert_envelope(response, 400)

    async def test_suspended_client_can_still_read(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.set_client_status("suspended")
        assert (await tenant.service("svc-1"))["service_id"] == "svc-1"
        assert len(await tenant.services()) == 1

    async def test_inactive_domain_can_still_be_read(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.set_domain_status("inactive")
        assert (await tenant.service("svc-1"))["status"] == "available"


class TestListServices:
    async def test_empty_domain_lists_nothing_without_link(self, tenant: Tenant) -> None:
        response = await tenant.http.get(f"{tenant.url}/services", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == []
        assert "Link" not in response.headers

    async def test_lists_every_service_of_the_domain_in_creation_order(
        self, tenant: Tenant
    ) -> None:
        other = Tenant(tenant.http, tenant.admin, tenant.headers, domain_id="mainland")
        await other.create_domain()
        await other.init_ok("svc-elsewhere")
        for name in ("svc-c", "svc-a", "svc-b"):
            await tenant.init_ok(name)
        listed = await tenant.services()
        assert [s["service_id"] for s in listed] == ["svc-c", "svc-a", "svc-b"]
        assert listed[0] == await tenant.service("svc-c")

    async def test_departed_filter_splits_departed_from_the_rest(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-staying")
        response = await tenant.init("svc-leaving-later", departure_datetime=future())
        assert response.status_code == 202
        await tenant.init_ok("svc-gone")
        await tenant.depart("svc-gone")

        departed = await tenant.services(departed="true")
        assert [s["service_id"] for s in departed] == ["svc-gone"]
        staying = await tenant.services(departed="false")
        assert [s["service_id"] for s in staying] == ["svc-staying", "svc-leaving-later"]
        assert len(await tenant.services()) == 3

    async def test_clearing_the_departure_brings_a_service_back(self, tenant: Tenant) -> None:
        await tenant.init_ok("svc-1")
        await tenant.depart("svc-1")
        assert await tenant.services(departed="false") == []
        response = await tenant.update("svc-1", {"departure_datetime": None})
        assert response.status_code == 200, response.text
        assert [s["service_id"] for s in await tenant.services(departed="false")] == ["svc-1"]
        assert await tenant.services(departed="true") == []

    async def test_bad_departed_value_is_400(self, tenant: Tenant) -> None:
        response = await tenant.http.get(
            f"{tenant.url}/services", params={"departed": "maybe"}, headers=tenant.headers
        )
        assert_envelope(response, 400)

    async def test_limit_pages_with_link_and_cursor(self, tenant: Tenant) -> None:
        names = [f"svc-{i}" for i in range(5)]
        for name in names:
            await tenant.init_ok(name)
        seen: list[str] = []
        url: str | None = f"{tenant.url}/services?limit=2"
        pages = 0
        while url is not None:
            response = await tenant.http.get(url, headers=tenant.headers)
            assert response.status_code == 200, response.text
            page = [s["service_id"] for s in response.json()]
            assert len(page) <= 2
            seen += page
            pages += 1
            link = response.headers.get("Link")
            if link is None:
                assert "X-Next-Cursor" not in response.headers
                url = None
                continue
            assert link.endswith('>; rel="next"')
            assert response.headers["X-Next-Cursor"] in link
            url = link[link.index("<") + 1 : link.index(">")]
        assert seen == names
        assert pages == 3

    async def test_pagination_respects_the_departed_filter(self, tenant: Tenant) -> None:
        for name in ("a", "b", "c", "d"):
            await tenant.init_ok(name)
        await tenant.depart("b")
        first = await tenant.http.get(
            f"{tenant.url}/services",
            params={"limit": 2, "departed": "false"},
            headers=tenant.headers,
        )
        assert [s["service_id"] for s in first.json()] == ["a", "c"]
        rest = await tenant.http.get(
            f"{tenant.url}/services",
            params={"limit": 2, "departed": "false", "cursor": first.headers["X-Next-Cursor"]},
            headers=tenant.headers,
        )
        assert [s["service_id"] for s in rest.json()] == ["d"]

    async def test_without_limit_every_row_is_returned(self, tenant: Tenant) -> None:
        for i in range(12):
            await tenant.init_ok(f"svc-{i:02d}", MINIMAL)
        response = await tenant.http.get(f"{tenant.url}/services", headers=tenant.headers)
        assert len(response.json()) == 12
        assert "Link" not in response.headers

    @pytest.mark.parametrize(
        "params",
        [{"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "not-a-cursor"}],
        ids=["zero", "too-big", "not-int", "bad-cursor"],
    )
    async def test_bad_limit_or_cursor_is_400(
        self, tenant: Tenant, params: dict[str, int | str]
    ) -> None:
        response = await tenant.http.get(
            f"{tenant.url}/services", params=params, headers=tenant.headers
        )
        assert_envelope(response, 400)

    async def test_missing_domain_is_404(self, tenant: Tenant) -> None:
        response = await tenant.http.get(
            f"{tenant.client_url}/domains/nowhere/services", headers=tenant.headers
        )
        assert_envelope(response, 404)
