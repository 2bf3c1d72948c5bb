"""Concurrent upserts through the app (API.md §9.1: at most one active revision per key).

Every request runs through the ASGI app at once (``asyncio.gather``). On PostgreSQL the
requests hold real connections and contend on the domain row lock, the revision unique
key and the partial unique index on active rows; on SQLite they queue for the writer.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.assignments.factories import MODEL, World, ok

N = 50
SCOPES = [None, "service-1"]
SCOPE_IDS = ["domain", "service"]


@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
class TestConcurrentUpserts:
    async def test_same_key_never_500_one_active_revisions_1_to_n(
        self, world: World, scope: str | None
    ) -> None:
        responses = await asyncio.gather(
            *(
                world.put(
                    "pricing",
                    {
                        "model_id": MODEL,
                        "model_version": "1" if index % 2 else "2.0.0",
                        "metadata": {"writer": index},
                    },
                    service_id=scope,
                )
                for index in range(N)
            )
        )
        codes = Counter(r.status_code for r in responses)
        assert codes == {201: 1, 200: N - 1}, [r.text for r in responses if r.status_code >= 300]
        bodies = [r.json() for r in responses]
        assert sorted(b["revision"] for b in bodies) == list(range(1, N + 1))
        first = next(r.json() for r in responses if r.status_code == 201)
        assert first["revision"] == 1
        history = await world.revisions("pricing", service_id=scope)
        assert [r["revision"] for r in history] == list(range(N, 0, -1))
        assert [r["status"] for r in history].count("active") == 1
        assert history[0]["status"] == "active"
        # Every response is the revision it wrote.
        by_id = {r["assignment_id"]: r for r in history}
        for body in bodies:
            assert by_id[body["assignment_id"]]["metadata"] == body["metadata"]
        listed = await world.listed(service_id=scope)
        assert [a["assignment_id"] for a in listed] == [history[0]["assignment_id"]]
        got = ok(await world.http.get(world.key_path("pricing", scope), headers=world.tenant))
        assert got == history[0]

    async def test_retiring_and_reviving_concurrently_leaves_at_most_one_active(
        self, world: World, scope: str | None
    ) -> None:
        responses = await asyncio.gather(
            *(
                world.put(
                    "pricing",
                    {
                        "model_id": MODEL,
                        "model_version": "1",
                        "status": "archived" if index % 3 == 0 else "active",
                    },
                    service_id=scope,
                )
                for index in range(N)
            )
        )
        assert {r.status_code for r in responses} <= {200, 201}
        history = await world.revisions("pricing", service_id=scope)
        assert [r["revision"] for r in history] == list(range(N, 0, -1))
        actives = [r for r in history if r["status"] == "active"]
        assert len(actives) <= 1
        if actives:
            assert actives[0] == history[0]  # only the newest revision can be active

    async def test_distinct_keys_each_get_revision_1(self, world: World, scope: str | None) -> None:
        responses = await asyncio.gather(
            *(world.put(f"key-{index}", service_id=scope) for index in range(N))
        )
        assert [r.status_code for r in responses] == [201] * N
        assert {r.json()["revision"] for r in responses} == {1}
        assert len(await world.listed(service_id=scope)) == N


class TestConcurrentScopes:
    async def test_domain_and_service_scopes_of_one_key_do_not_contend(self, world: World) -> None:
        responses = await asyncio.gather(
            *(world.put("pricing", service_id=None if i % 2 else "service-1") for i in range(N))
        )
        assert {r.status_code for r in responses} <= {200, 201}
        assert Counter(r.status_code for r in responses)[201] == 2
        domain = await world.revisions("pricing")
        service = await world.revisions("pricing", service_id="service-1")
        assert [r["revision"] for r in domain] == list(range(N // 2, 0, -1))
        assert [r["revision"] for r in service] == list(range(N // 2, 0, -1))
        assert [r["status"] for r in domain].count("active") == 1
        assert [r["status"] for r in service].count("active") == 1


FREEZE = [
    {"name": "route", "json_schema": {"type": "string", "enum": ["route-a"]}, "mandatory": True},
]


class TestDefaultUpsertAgainstServiceWrites:
    async def test_service_init_racing_a_freeze_never_both_succeed(self, world: World) -> None:
        """Either the init saw the freeze (422) or the upsert saw the service (blocked)."""
        await world.new_version("3", features=FREEZE)
        for index in range(5):
            service_id = f"racer-{index}"
            upsert, init = await asyncio.gather(
                world.put("default", {"model_id": MODEL, "model_version": "3"}),
                world.http.post(
                    f"{world.domain_path()}/service/init",
                    json={"service_id": service_id, "static_features": {"route": "route-z"}},
                    headers=world.tenant,
                ),
            )
            assert upsert.status_code in (200, 201, 422), upsert.text
            assert init.status_code in (202, 422), init.text
            assert not (upsert.status_code in (200, 201) and init.status_code == 202)
            if upsert.status_code == 422:
                blocked = [b["service_id"] for b in upsert.json()["blocking_services"]]
                assert service_id in blocked
                # Retire the racer so the next round starts from a compatible domain.
                await world.update_service(
                    service_id, {"departure_datetime": "2000-01-01T00:00:00Z"}
                )

    async def test_service_update_racing_a_freeze_leaves_features_resolvable(
        self, world: World
    ) -> None:
        await world.new_version("3", features=FREEZE)
        update, upsert = await asyncio.gather(
            world.http.put(
                f"{world.domain_path()}/service/service-1",
                json={"static_features": {"route": "route-z"}},
                headers=world.tenant,
            ),
            world.put("default", {"model_id": MODEL, "model_version": "3"}),
        )
        assert update.status_code in (200, 422), update.text
        assert upsert.status_code in (201, 422), upsert.text
        assert not (update.status_code == 200 and upsert.status_code == 201)
        service = await world.service("service-1")
        if upsert.status_code == 201:
            assert service["provided_features"] == {"route": "route-a"}
        else:
            assert service["provided_features"] == {"route": "route-z"}
