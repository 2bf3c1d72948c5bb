"""Concurrent registry writes through the app (API.md §2, §3).

Every request goes through the ASGI app at the same time (``asyncio.gather``); on
PostgreSQL the requests hold real connections and contend on the model's row lock and
the unique keys, on SQLite they queue for the single writer.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from typing import Any

import httpx

from pie.db.database import Database
from tests.helpers import assert_envelope
from tests.registry import factories
from tests.registry.factories import DOCUMENTED_HANDLERS

N = 20


async def versions(client: httpx.AsyncClient, admin: dict[str, str], model_id: str) -> Any:
    response = await client.get(f"/v2/models/{model_id}/versions", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def qualified_handlers(index: int) -> dict[str, Any]:
    """Handlers that tell which request wrote them (the Lambda qualifier)."""
    handlers = copy.deepcopy(DOCUMENTED_HANDLERS)
    handlers["training"]["version"] = f"q{index}"
    return handlers


class TestConcurrentNewVersion:
    async def test_same_version_string_exactly_one_201_the_rest_409(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v2/models/m/new_version",
                    json={"version": "2", "description": f"attempt {index}"},
                    headers=admin,
                )
                for index in range(N)
            )
        )
        codes = Counter(r.status_code for r in responses)
        assert codes == {201: 1, 409: N - 1}, codes
        for response in responses:
            if response.status_code == 409:
                assert "'2'" in assert_envelope(response, 409)["message"]
        winner = next(r for r in responses if r.status_code == 201).json()["version"]
        listed = await versions(client, admin, "m")
        assert [v["version"] for v in listed] == ["1", "2"]
        assert listed[1] == winner

    async def test_duplicate_of_version_1_is_always_409(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        responses = await asyncio.gather(
            *(
                client.post("/v2/models/m/new_version", json={"version": "1"}, headers=admin)
                for _ in range(N)
            )
        )
        assert [r.status_code for r in responses] == [409] * N
        assert len(await versions(client, admin, "m")) == 1

    async def test_distinct_version_strings_all_succeed(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        wanted = [f"v{index}" for index in range(N)]
        responses = await asyncio.gather(
            *(
                client.post("/v2/models/m/new_version", json={"version": v}, headers=admin)
                for v in wanted
            )
        )
        assert [r.status_code for r in responses] == [201] * N, [r.text for r in responses]
        listed = await versions(client, admin, "m")
        assert len(listed) == N + 1
        assert sorted(v["version"] for v in listed[1:]) == sorted(wanted)
        assert {v["status"] for v in listed} == {"pending"}

    async def test_other_models_are_not_blocked_or_mixed_up(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        for model_id in ("a", "b"):
            await factories.create_model(db, model_id)
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/v2/models/{model_id}/new_version", json={"version": "2"}, headers=admin
                )
                for model_id in ("a", "b") * 5
            )
        )
        assert Counter(r.status_code for r in responses) == {201: 2, 409: 8}
        for model_id in ("a", "b"):
            assert [v["version"] for v in await versions(client, admin, model_id)] == ["1", "2"]


class TestConcurrentUpdates:
    async def test_updates_of_an_active_model_create_contiguous_distinct_versions(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_active_model(db, "m")
        responses = await asyncio.gather(
            *(
                client.put(
                    "/v2/models/m",
                    json={"name": f"name {index}", "handlers": qualified_handlers(index)},
                    headers=admin,
                )
                for index in range(N)
            )
        )
        assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses]
        created = [r.json()["version"]["version"] for r in responses]
        assert len(set(created)) == N
        assert sorted(created, key=int) == [str(n) for n in range(2, N + 2)]
        # Each version snapshots exactly the definition of the request that created it.
        for index, response in enumerate(responses):
            version = response.json()["version"]
            assert version["handlers"] == qualified_handlers(index)
            assert version["status"] == "pending"
        listed = await versions(client, admin, "m")
        assert len(listed) == N + 1
        by_version = {v["version"]: v for v in listed}
        for response in responses:
            assert by_version[response.json()["version"]["version"]] == response.json()["version"]
        assert by_version["1"]["status"] == "active"
        assert by_version["1"]["handlers"] == DOCUMENTED_HANDLERS
        # The last writer's definition is the model's and the newest version's.
        last = max(range(N), key=lambda i: int(created[i]))
        model = (await client.get("/v2/models/m", headers=admin)).json()
        assert model["name"] == f"name {last}"
        assert model["handlers"] == qualified_handlers(last)
        assert model["status"] == "active"

    async def test_updates_of_a_pending_model_never_create_versions(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        responses = await asyncio.gather(
            *(
                client.put(
                    "/v2/models/m", json={"handlers": qualified_handlers(index)}, headers=admin
                )
                for index in range(N)
            )
        )
        assert [r.status_code for r in responses] == [200] * N
        assert {r.json()["version"]["version"] for r in responses} == {"1"}
        listed = await versions(client, admin, "m")
        model = (await client.get("/v2/models/m", headers=admin)).json()
        assert len(listed) == 1
        assert listed[0]["handlers"] == model["handlers"]  # the last refresh won everywhere

    async def test_updates_racing_new_versions_never_collide(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        """Auto-numbered versions and explicit ones are settled under the same lock."""
        await factories.create_active_model(db, "m")
        puts = [
            client.put("/v2/models/m", json={"name": f"n{i}"}, headers=admin) for i in range(10)
        ]
        posts = [
            client.post("/v2/models/m/new_version", json={"version": f"x{i}"}, headers=admin)
            for i in range(10)
        ]
        responses = await asyncio.gather(*puts, *posts)
        assert [r.status_code for r in responses[:10]] == [200] * 10
        assert [r.status_code for r in responses[10:]] == [201] * 10
        auto = sorted((r.json()["version"]["version"] for r in responses[:10]), key=int)
        assert auto == [str(n) for n in range(2, 12)]
        assert len(await versions(client, admin, "m")) == 21


class TestConcurrentStatus:
    async def test_conflicting_transitions_exactly_one_wins(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        targets = ["active", "failed"] * 5
        responses = await asyncio.gather(
            *(
                client.post("/v2/models/m/versions/1/new_status", json={"status": t}, headers=admin)
                for t in targets
            )
        )
        final = (await client.get("/v2/models/m/versions/1", headers=admin)).json()["status"]
        assert final in {"active", "failed"}
        for target, response in zip(targets, responses, strict=True):
            if target == final:
                assert response.status_code == 200, response.text  # the move or a no-op
                assert response.json()["version"]["status"] == final
            else:
                assert_envelope(response, 422)  # active and failed never lead to each other
        model = (await client.get("/v2/models/m", headers=admin)).json()
        assert model["status"] == ("active" if final == "active" else "pending")

    async def test_activating_many_versions_at_once_makes_the_model_active_once(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_model(db, "m")
        for index in range(2, 11):
            await factories.create_version(db, "m", str(index))
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/v2/models/m/versions/{index}/new_status",
                    json={"status": "active"},
                    headers=admin,
                )
                for index in range(1, 11)
            )
        )
        assert [r.status_code for r in responses] == [200] * 10
        assert {r.json()["model"]["status"] for r in responses} == {"active"}
        assert {v["status"] for v in await versions(client, admin, "m")} == {"active"}


class TestConcurrentCreate:
    async def test_same_model_id_exactly_one_201_the_rest_409(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v2/models",
                    json=factories.model_body("same", name=f"n{index}"),
                    headers=admin,
                )
                for index in range(N)
            )
        )
        assert Counter(r.status_code for r in responses) == {201: 1, 409: N - 1}
        winner = next(r for r in responses if r.status_code == 201).json()
        assert (await client.get("/v2/models/same", headers=admin)).json() == winner["model"]
        assert len(await versions(client, admin, "same")) == 1
