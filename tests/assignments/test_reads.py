"""Assignment reads: list by status, the active revision, revision history (API.md §0, §9.2)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from pie.auth.principal import Permission
from tests.assignments.factories import MODEL, World, ok
from tests.helpers import assert_envelope

SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestListAssignments:
    async def test_active_by_default_archived_and_all_on_request(
        self, world: World, scope: str | None
    ) -> None:
        a1 = await world.assign("alpha", service_id=scope)
        a2 = await world.assign("alpha", "2.0.0", service_id=scope)
        b1 = await world.assign("beta", service_id=scope)
        gone = await world.assign("gamma", service_id=scope, status="archived")
        active = await world.listed(service_id=scope)
        assert [a["assignment_id"] for a in active] == [a2["assignment_id"], b1["assignment_id"]]
        assert await world.listed(service_id=scope, status="active") == active
        archived = await world.listed(service_id=scope, status="archived")
        assert {a["assignment_id"] for a in archived} == {
            a1["assignment_id"],
            gone["assignment_id"],
        }
        assert all(a["status"] == "archived" for a in archived)
        every = await world.listed(service_id=scope, status="all")
        assert [a["assignment_id"] for a in every] == [
            a1["assignment_id"],
            a2["assignment_id"],
            b1["assignment_id"],
            gone["assignment_id"],
        ]

    async def test_empty_is_200_array_without_link(self, world: World, scope: str | None) -> None:
        response = await world.http.get(world.base(scope), headers=world.tenant)
        assert ok(response) == []
        assert "link" not in response.headers

    async def test_bad_status_filter_is_400(self, world: World, scope: str | None) -> None:
        response = await world.http.get(
            world.base(scope), params={"status": "deleted"}, headers=world.tenant
        )
        assert_envelope(response, 400)

    @pytest.mark.parametrize("limit", ["0", "1001", "x"])
    async def test_bad_limit_is_400(self, world: World, scope: str | None, limit: str) -> None:
        response = await world.http.get(
            world.base(scope), params={"limit": limit}, headers=world.tenant
        )
        assert_envelope(response, 400)

    async def test_limit_pages_with_cursor(self, world: World, scope: str | None) -> None:
        made = [await world.assign(f"key{i}", service_id=scope) for i in range(3)]
        first = await world.http.get(world.base(scope), params={"limit": 2}, headers=world.tenant)
        assert [a["assignment_id"] for a in ok(first)] == [m["assignment_id"] for m in made[:2]]
        cursor = first.headers["x-next-cursor"]
        assert 'rel="next"' in first.headers["link"]
        second = await world.http.get(
            world.base(scope), params={"limit": 2, "cursor": cursor}, headers=world.tenant
        )
        assert [a["assignment_id"] for a in ok(second)] == [made[2]["assignment_id"]]
        assert "x-next-cursor" not in second.headers

    async def test_read_domains_token_may_list(self, world: World, scope: str | None) -> None:
        made = await world.assign("alpha", service_id=scope)
        reader = world.token(Permission.READ_DOMAINS)
        response = await world.http.get(world.base(scope), headers=reader)
        assert ok(response) == [made]

    async def test_token_without_read_domains_is_403(self, world: World, scope: str | None) -> None:
        token = world.token(Permission.RUN_INFERENCE, Permission.READ_MODELS)
        assert_envelope(await world.http.get(world.base(scope), headers=token), 403)

    async def test_missing_domain_is_404(self, world: World, scope: str | None) -> None:
        response = await world.http.get(world.base(scope, "nowhere"), headers=world.tenant)
        assert_envelope(response, 404)


class TestListServiceScope:
    async def test_missing_service_is_404_on_every_read(self, world: World) -> None:
        key = world.key_path("alpha", "ghost")
        for path in (world.base("ghost"), key, key + "/revisions"):
            response = await world.http.get(path, headers=world.tenant)
            assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_departed_service_history_stays_readable(self, world: World) -> None:
        made = await world.assign("alpha", service_id="service-1")
        await world.update_service("service-1", {"departure_datetime": "2000-01-01T00:00:00Z"})
        assert await world.listed(service_id="service-1") == [made]
        got = await world.http.get(world.key_path("alpha", "service-1"), headers=world.tenant)
        assert ok(got) == made

    async def test_lists_do_not_mix_scopes(self, world: World) -> None:
        await world.add_service("service-2", {"route": "r"})
        domain = await world.assign("alpha")
        one = await world.assign("alpha", service_id="service-1")
        two = await world.assign("beta", service_id="service-2")
        assert await world.listed() == [domain]
        assert await world.listed(service_id="service-1") == [one]
        assert await world.listed(service_id="service-2") == [two]


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestGetByKey:
    async def test_returns_the_active_revision(self, world: World, scope: str | None) -> None:
        await world.assign("alpha", service_id=scope)
        latest = await world.assign("alpha", "2.0.0", service_id=scope)
        got = ok(await world.http.get(world.key_path("alpha", scope), headers=world.tenant))
        assert got == latest
        assert got["revision"] == 2

    async def test_unknown_key_is_404(self, world: World, scope: str | None) -> None:
        response = await world.http.get(world.key_path("nothing", scope), headers=world.tenant)
        assert_envelope(response, 404)

    async def test_key_with_only_archived_revisions_is_404(
        self, world: World, scope: str | None
    ) -> None:
        await world.assign("alpha", service_id=scope)
        await world.assign("alpha", service_id=scope, status="archived")
        response = await world.http.get(world.key_path("alpha", scope), headers=world.tenant)
        assert_envelope(response, 404)

    async def test_invalid_key_is_400(self, world: World, scope: str | None) -> None:
        response = await world.http.get(world.key_path("_x", scope), headers=world.tenant)
        assert_envelope(response, 400)


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestRevisions:
    async def test_newest_first(self, world: World, scope: str | None) -> None:
        made = [
            await world.assign("alpha", version, service_id=scope)
            for version in ("1", "2.0.0", "1", "2.0.0")
        ]
        history = await world.revisions("alpha", service_id=scope)
        assert [r["revision"] for r in history] == [4, 3, 2, 1]
        assert [r["assignment_id"] for r in history] == [m["assignment_id"] for m in reversed(made)]
        assert [r["status"] for r in history] == ["active", "archived", "archived", "archived"]
        # The archived rows record their own model version, not the current one.
        assert [r["model_version"] for r in history] == ["2.0.0", "1", "2.0.0", "1"]

    async def test_only_the_addressed_key(self, world: World, scope: str | None) -> None:
        await world.assign("alpha", service_id=scope)
        await world.assign("beta", service_id=scope)
        history = await world.revisions("alpha", service_id=scope)
        assert [r["assignment_key"] for r in history] == ["alpha"]

    async def test_unknown_key_is_empty_200(self, world: World, scope: str | None) -> None:
        assert await world.revisions("nothing", service_id=scope) == []

    async def test_explicit_limit_pages_newest_first(self, world: World, scope: str | None) -> None:
        for _ in range(5):
            await world.assign("alpha", service_id=scope)
        path = world.key_path("alpha", scope) + "/revisions"
        seen: list[int] = []
        params: dict[str, str | int] = {"limit": 2}
        pages = 0
        while True:
            response = await world.http.get(path, params=params, headers=world.tenant)
            seen += [r["revision"] for r in ok(response)]
            pages += 1
            if "x-next-cursor" not in response.headers:
                break
            params = {"limit": 2, "cursor": response.headers["x-next-cursor"]}
        assert seen == [5, 4, 3, 2, 1]
        assert pages == 3

    async def test_bad_cursor_is_400(self, world: World, scope: str | None) -> None:
        path = world.key_path("alpha", scope) + "/revisions"
        response = await world.http.get(path, params={"cursor": "!!"}, headers=world.tenant)
        assert_envelope(response, 400)


class TestRevisionsDefaultLimit:
    async def test_default_limit_is_100_and_assignment_lists_are_unpaged(
        self, world: World
    ) -> None:
        for index in range(101):
            version = "1" if index % 2 == 0 else "2.0.0"
            response = await world.put("alpha", {"model_id": MODEL, "model_version": version})
            assert response.status_code == (201 if index == 0 else 200), response.text
        path = world.key_path("alpha") + "/revisions"
        first = await world.http.get(path, headers=world.tenant)
        page = ok(first)
        assert len(page) == 100
        assert [r["revision"] for r in page] == list(range(101, 1, -1))
        cursor = first.headers["x-next-cursor"]
        link = first.headers["link"]
        assert parse_qs(urlsplit(link.split(";")[0].strip("<>")).query)["cursor"] == [cursor]
        rest = await world.http.get(path, params={"cursor": cursor}, headers=world.tenant)
        assert [r["revision"] for r in ok(rest)] == [1]
        assert "x-next-cursor" not in rest.headers
        # Assignment lists are documented without pagination: every row when no limit.
        everything = await world.listed(status="all")
        assert len(everything) == 101
        assert [a["revision"] for a in everything] == list(range(1, 102))


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestReadsOfRetiredTenants:
    async def test_reads_work_for_an_inactive_domain_of_a_suspended_client(
        self, world: World, scope: str | None
    ) -> None:
        made = await world.assign("alpha", service_id=scope)
        await world.set_domain_status("inactive")
        await world.suspend_client()
        assert await world.listed(service_id=scope) == [made]
        got = await world.http.get(world.key_path("alpha", scope), headers=world.tenant)
        assert ok(got) == made
        assert await world.revisions("alpha", service_id=scope) == [made]
