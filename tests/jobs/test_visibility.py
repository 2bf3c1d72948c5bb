"""Who sees which job (API.md §4), and `GET /v2/jobs` filters and paging (§0, §4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.jobs.service import Tenant
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.jobs.factories import Models, all_jobs, get_job, insert_job, start_inference

MISSING = "0190aaaa-0000-7000-8000-000000000000"


class World:
    """Jobs of two tenants plus tenant-less jobs of three different callers."""

    def __init__(self, model_id: str, ids: dict[str, str]) -> None:
        self.model_id = model_id
        self.ids = ids

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


@pytest.fixture
async def world(db: Database, models: Models) -> World:
    model_id = await models.create()
    acme = Tenant(client_id="acme", domain_id="ferries", service_id="svc-1", assignment_id="as-1")
    globex = Tenant(client_id="globex", domain_id="rail")
    ids: dict[str, str] = {}
    # Creation order matters for the newest-first checks below.
    ids["acme_by_admin"] = await insert_job(db, model_id, created_by="test-admin", tenant=acme)
    ids["globex_by_acme"] = await insert_job(db, model_id, created_by="machine-acme", tenant=globex)
    ids["own_by_acme"] = await insert_job(db, model_id, created_by="machine-acme")
    ids["own_by_admin"] = await insert_job(db, model_id, created_by="test-admin")
    ids["own_by_other"] = await insert_job(db, model_id, created_by="machine-other")
    ids["acme_by_other"] = await insert_job(db, model_id, created_by="machine-other", tenant=acme)
    ids["globex_by_admin"] = await insert_job(db, model_id, created_by="test-admin", tenant=globex)
    return World(model_id, ids)


def ids_of(jobs: list[Any]) -> list[str]:
    return [j["job_id"] for j in jobs]


class TestAdminVisibility:
    async def test_an_admin_sees_every_job_newest_first(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        jobs = await all_jobs(client, admin)
        assert ids_of(jobs) == list(reversed(world.ids.values()))

    async def test_an_admin_reads_any_job(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        for job_id in world.ids.values():
            assert (await get_job(client, admin, job_id))["job_id"] == job_id

    async def test_an_admin_group_human_sees_every_job(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        root = tokens.human(settings, "admin", subject="root")
        assert len(await all_jobs(client, root)) == len(world.ids)


class TestTenantVisibility:
    async def test_a_tenant_machine_token_lists_its_clients_jobs_and_its_own(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        acme = tokens.machine(settings, "acme")
        jobs = await all_jobs(client, acme)
        assert ids_of(jobs) == [
            world["acme_by_other"],
            world["own_by_acme"],
            world["acme_by_admin"],
        ]

    @pytest.mark.parametrize("name", ["acme_by_admin", "acme_by_other", "own_by_acme"])
    async def test_a_tenant_reads_a_visible_job(
        self, client: httpx.AsyncClient, settings: Settings, world: World, name: str
    ) -> None:
        job = await get_job(client, tokens.machine(settings, "acme"), world[name])
        assert job["job_id"] == world[name]

    @pytest.mark.parametrize(
        "name", ["globex_by_acme", "globex_by_admin", "own_by_admin", "own_by_other"]
    )
    async def test_another_callers_job_is_404_exactly_like_a_missing_one(
        self, client: httpx.AsyncClient, settings: Settings, world: World, name: str
    ) -> None:
        acme = tokens.machine(settings, "acme")
        hidden = await client.get(f"/v2/jobs/{world[name]}", headers=acme)
        missing = await client.get(f"/v2/jobs/{MISSING}", headers=acme)
        hidden_body = assert_envelope(hidden, 404)
        missing_body = assert_envelope(missing, 404)
        assert hidden_body["message"].replace(world[name], "ID") == missing_body["message"].replace(
            MISSING, "ID"
        )
        assert "globex" not in hidden.text

    async def test_a_tenant_human_sees_its_clients_jobs(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        alice = tokens.human(settings, "client:acme", subject="alice")
        jobs = await all_jobs(client, alice)
        assert ids_of(jobs) == [world["acme_by_other"], world["acme_by_admin"]]

    async def test_a_human_in_two_clients_sees_both(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        both = tokens.human(settings, "client:acme", "client:globex", subject="bea")
        jobs = await all_jobs(client, both)
        expected = {
            world["acme_by_admin"],
            world["acme_by_other"],
            world["globex_by_acme"],
            world["globex_by_admin"],
        }
        assert set(ids_of(jobs)) == expected

    async def test_a_caller_without_tenants_sees_only_what_it_started(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        other = tokens.machine(settings, None, Permission.READ_MODELS, subject="machine-other")
        jobs = await all_jobs(client, other)
        assert ids_of(jobs) == [world["own_by_other"]]  # not acme_by_other: it has a client

    async def test_jobs_started_over_http_are_visible_to_their_starter(
        self, client: httpx.AsyncClient, settings: Settings, models: Models
    ) -> None:
        model_id = await models.create()
        carol = tokens.machine(
            settings, None, Permission.READ_MODELS, Permission.RUN_INFERENCE, subject="carol"
        )
        dave = tokens.machine(
            settings, None, Permission.READ_MODELS, Permission.RUN_INFERENCE, subject="dave"
        )
        job_id = await start_inference(client, carol, model_id)
        assert (await get_job(client, carol, job_id))["created_by"] == "carol"
        assert_envelope(await client.get(f"/v2/jobs/{job_id}", headers=dave), 404)
        assert await all_jobs(client, dave) == []

    async def test_reading_jobs_needs_read_models(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        runner = tokens.machine(settings, "acme", Permission.RUN_INFERENCE)
        assert_envelope(await client.get("/v2/jobs", headers=runner), 403)
        assert_envelope(await client.get(f"/v2/jobs/{world['acme_by_admin']}", headers=runner), 403)

    async def test_no_token_is_401(self, client: httpx.AsyncClient, world: World) -> None:
        assert_envelope(await client.get("/v2/jobs"), 401)
        assert_envelope(await client.get(f"/v2/jobs/{world['own_by_admin']}"), 401)


class TestFilters:
    async def test_tenant_fields_are_recorded(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        job = await get_job(client, admin, world["acme_by_admin"])
        assert job["client_id"] == "acme"
        assert job["domain_id"] == "ferries"
        assert job["service_id"] == "svc-1"
        assert job["assignment_id"] == "as-1"

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"client_id": "acme"}, ["acme_by_other", "acme_by_admin"]),
            ({"client_id": "globex"}, ["globex_by_admin", "globex_by_acme"]),
            ({"domain_id": "rail"}, ["globex_by_admin", "globex_by_acme"]),
            ({"service_id": "svc-1"}, ["acme_by_other", "acme_by_admin"]),
            ({"assignment_id": "as-1"}, ["acme_by_other", "acme_by_admin"]),
            ({"client_id": "initech"}, []),
        ],
    )
    async def test_tenant_filters(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        world: World,
        params: dict[str, str],
        expected: list[str],
    ) -> None:
        assert ids_of(await all_jobs(client, admin, **params)) == [world[n] for n in expected]

    async def test_a_filter_never_widens_visibility(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        acme = tokens.machine(settings, "acme")
        assert await all_jobs(client, acme, client_id="globex") == []

    async def test_status_and_job_type_filters(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        model_id = await models.create()
        trainable = await models.create(status="pending")
        done = await start_inference(client, admin, model_id)
        waiting = await start_inference(client, admin, model_id)
        training = (
            await client.post(
                f"/v2/models/{trainable}/versions/1/training", json={"input": {}}, headers=admin
            )
        ).json()["training_job_id"]
        await client.post(
            f"/v2/models/{model_id}/versions/1/jobs/{done}/complete",
            json={"status": "success"},
            headers=admin,
        )
        assert ids_of(await all_jobs(client, admin, status="success")) == [done]
        assert ids_of(await all_jobs(client, admin, status="pending")) == [training, waiting]
        assert ids_of(await all_jobs(client, admin, job_type="training")) == [training]
        assert ids_of(await all_jobs(client, admin, job_type="inference")) == [waiting, done]
        assert ids_of(await all_jobs(client, admin, status="pending", job_type="inference")) == [
            waiting
        ]
        assert await all_jobs(client, admin, status="cancelled") == []

    async def test_model_and_version_filters(
        self, client: httpx.AsyncClient, admin: dict[str, str], models: Models
    ) -> None:
        one = await models.create()
        two = await models.create()
        await models.add_version(two, "2", status="active")
        a = await start_inference(client, admin, one)
        b = await start_inference(client, admin, two)
        c = await start_inference(client, admin, two, version="2")
        assert ids_of(await all_jobs(client, admin, model_id=one)) == [a]
        assert ids_of(await all_jobs(client, admin, model_id=two)) == [c, b]
        assert ids_of(await all_jobs(client, admin, model_id=two, model_version="2")) == [c]
        assert ids_of(await all_jobs(client, admin, model_version="1")) == [b, a]

    async def test_created_after_and_before(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        pivot = await get_job(client, admin, world["own_by_admin"])
        at = datetime.fromisoformat(pivot["created_at"])
        after = await all_jobs(client, admin, created_after=at.isoformat())
        before = await all_jobs(client, admin, created_before=at.isoformat())
        assert world["own_by_admin"] not in ids_of(after) + ids_of(before)
        assert ids_of(after) == [
            world["globex_by_admin"],
            world["acme_by_other"],
            world["own_by_other"],
        ]
        assert ids_of(before) == [
            world["own_by_acme"],
            world["globex_by_acme"],
            world["acme_by_admin"],
        ]
        later = (at + timedelta(days=1)).isoformat()
        assert await all_jobs(client, admin, created_after=later) == []

    @pytest.mark.parametrize(
        "params",
        [
            {"status": "running"},
            {"job_type": "scoring"},
            {"model_id": "bad id"},
            {"created_after": "yesterday"},
            {"limit": "0"},
            {"limit": "1001"},
            {"cursor": "not-a-cursor"},
        ],
    )
    async def test_a_bad_filter_or_page_parameter_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], params: dict[str, str]
    ) -> None:
        assert_envelope(await client.get("/v2/jobs", params=params, headers=admin), 400)


class TestPaging:
    async def test_pages_follow_the_cursor_without_gaps_or_repeats(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        expected = list(reversed(world.ids.values()))
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3}
        pages = 0
        while True:
            response = await client.get("/v2/jobs", params=params, headers=admin)
            assert response.status_code == 200, response.text
            pages += 1
            seen += ids_of(response.json())
            cursor = response.headers.get("X-Next-Cursor")
            if cursor is None:
                assert "Link" not in response.headers
                break
            link = response.headers["Link"]
            assert link.endswith('>; rel="next"')
            query = parse_qs(urlsplit(link[1 : link.index(">")]).query)
            assert query["cursor"] == [cursor]
            assert query["limit"] == ["3"]
            params = {"limit": 3, "cursor": cursor}
        assert seen == expected
        assert pages == 3

    async def test_the_cursor_keeps_the_filters_of_the_link(
        self, client: httpx.AsyncClient, admin: dict[str, str], world: World
    ) -> None:
        first = await client.get(
            "/v2/jobs", params={"limit": 1, "client_id": "acme"}, headers=admin
        )
        link = first.headers["Link"]
        url = link[1 : link.index(">")]
        second = await client.get(url, headers=admin)
        assert ids_of(first.json()) + ids_of(second.json()) == [
            world["acme_by_other"],
            world["acme_by_admin"],
        ]
        assert "Link" not in second.headers

    async def test_the_default_page_is_100_jobs(
        self, client: httpx.AsyncClient, admin: dict[str, str], db: Database, models: Models
    ) -> None:
        model_id = await models.create()
        for _ in range(101):
            await insert_job(db, model_id, created_by="bulk")
        response = await client.get("/v2/jobs", headers=admin)
        assert response.status_code == 200
        assert len(response.json()) == 100
        assert "X-Next-Cursor" in response.headers
        rest = await client.get(
            "/v2/jobs", params={"cursor": response.headers["X-Next-Cursor"]}, headers=admin
        )
        assert len(rest.json()) == 1
        assert "Link" not in rest.headers

    async def test_no_jobs_is_an_empty_array_without_link(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/jobs", headers=admin)
        assert response.status_code == 200
        assert response.json() == []
        assert "Link" not in response.headers
        assert "X-Next-Cursor" not in response.headers

    async def test_a_tenant_pages_only_through_its_visible_jobs(
        self, client: httpx.AsyncClient, settings: Settings, world: World
    ) -> None:
        acme = tokens.machine(settings, "acme")
        first = await client.get("/v2/jobs", params={"limit": 2}, headers=acme)
        second = await client.get(
            "/v2/jobs",
            params={"limit": 2, "cursor": first.headers["X-Next-Cursor"]},
            headers=acme,
        )
        assert ids_of(first.json()) + ids_of(second.json()) == [
            world["acme_by_other"],
            world["own_by_acme"],
            world["acme_by_admin"],
        ]
        assert "X-Next-Cursor" not in second.headers
