"""Who sees which subscription (API.md §11.1): a stored input is tenant data.

Subscriptions with a tenant ``context`` are built with ``tenant_subscription`` (the
service function assignment-job ``subscribe: true`` will call; that route is not wired).
"""

from __future__ import annotations

import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from tests import tokens
from tests.helpers import assert_envelope
from tests.subscriptions.factories import Api, context, stored, subs_path, tenant_subscription

READ_WRITE = (Permission.READ_MODELS, Permission.MANAGE_MODELS)


def acme(settings: Settings, subject: str) -> dict[str, str]:
    return tokens.machine(settings, "acme", *READ_WRITE, subject=subject)


class TestWithoutContext:
    async def test_creator_sees_its_own(self, api: Api, settings: Settings) -> None:
        model = await api.model()
        mine = await api.subscribe(model, stored(model, {"a": 1}), headers=acme(settings, "m1"))
        listed = await api.subscriptions(model, headers=acme(settings, "m1"))
        assert [s["id"] for s in listed] == [mine["id"]]

    async def test_another_machine_of_the_same_client_does_not_see_it(
        self, api: Api, settings: Settings
    ) -> None:
        model = await api.model()
        mine = await api.subscribe(model, stored(model, {"a": 1}), headers=acme(settings, "m1"))
        peer = acme(settings, "m2")
        assert await api.subscriptions(model, headers=peer) == []
        path = subs_path(model, mine["id"])
        assert_envelope(await api.client.get(path, headers=peer), 404)
        put = await api.client.put(path, json={"status": "paused"}, headers=peer)
        assert_envelope(put, 404)
        assert_envelope(await api.client.delete(path, headers=peer), 404)
        assert (await api.subscription(model, mine["id"]))["status"] == "active"

    async def test_hidden_and_missing_answer_the_same(self, api: Api, settings: Settings) -> None:
        model = await api.model()
        mine = await api.subscribe(model, stored(model, {}), headers=acme(settings, "m1"))
        peer = acme(settings, "m2")
        hidden = await api.client.get(subs_path(model, mine["id"]), headers=peer)
        missing = await api.client.get(subs_path(model, "no-such-id"), headers=peer)
        assert hidden.status_code == missing.status_code == 404
        # The same message as for an id that never existed (only the echoed id differs).
        assert (
            hidden.json()["message"].replace(mine["id"], "no-such-id")
            == (missing.json()["message"])
        )

    async def test_admin_sees_every_one(self, api: Api, settings: Settings) -> None:
        model = await api.model()
        first = await api.subscribe(model, stored(model, {"a": 1}), headers=acme(settings, "m1"))
        second = await api.subscribe(model, stored(model, {"a": 2}), headers=acme(settings, "m2"))
        listed = await api.subscriptions(model)
        assert [s["id"] for s in listed] == [first["id"], second["id"]]
        assert (await api.subscription(model, first["id"]))["id"] == first["id"]


class TestWithContext:
    async def test_a_token_of_the_client_sees_it(
        self, api: Api, settings: Settings, db: Database
    ) -> None:
        model = await api.model()
        sub_id = await tenant_subscription(db, model, {"q": 1}, client_id="acme")
        reader = tokens.machine(settings, "acme", Permission.READ_MODELS, subject="reader")
        listed = await api.subscriptions(model, headers=reader)
        assert [s["id"] for s in listed] == [sub_id]
        assert listed[0]["context"] == context("acme")
        one = await api.client.get(subs_path(model, sub_id), headers=reader)
        assert one.status_code == 200, one.text

    async def test_a_human_of_the_client_sees_it(
        self, api: Api, settings: Settings, db: Database
    ) -> None:
        model = await api.model()
        sub_id = await tenant_subscription(db, model, {"q": 1}, client_id="acme")
        human = tokens.human(settings, "client:acme")
        assert [s["id"] for s in await api.subscriptions(model, headers=human)] == [sub_id]

    @pytest.mark.parametrize("client_id", ["globex", None])
    async def test_other_tokens_do_not_see_it_even_their_creator_subject(
        self, api: Api, settings: Settings, db: Database, client_id: str | None
    ) -> None:
        model = await api.model()
        # Created by "outsider", but its context says acme: only acme's tokens see it.
        sub_id = await tenant_subscription(
            db, model, {"q": 1}, client_id="acme", created_by="outsider"
        )
        outsider = tokens.machine(settings, client_id, *READ_WRITE, subject="outsider")
        assert await api.subscriptions(model, headers=outsider) == []
        path = subs_path(model, sub_id)
        assert_envelope(await api.client.get(path, headers=outsider), 404)
        put = await api.client.put(path, json={"input": {"q": 2}}, headers=outsider)
        assert_envelope(put, 404)
        assert_envelope(await api.client.delete(path, headers=outsider), 404)
        assert (await api.subscription(model, sub_id))["input"] == {"q": 1}

    async def test_lists_mix_visible_rows_only(
        self, api: Api, settings: Settings, db: Database
    ) -> None:
        model = await api.model()
        ours = await tenant_subscription(db, model, {"q": 1}, client_id="acme")
        await tenant_subscription(db, model, {"q": 2}, client_id="globex")
        mine = await api.subscribe(model, stored(model, {"q": 3}), headers=acme(settings, "m1"))
        await api.subscribe(model, stored(model, {"q": 4}), headers=acme(settings, "m2"))
        listed = await api.subscriptions(model, headers=acme(settings, "m1"))
        assert sorted(s["id"] for s in listed) == sorted([ours, mine["id"]])
        assert len(await api.subscriptions(model)) == 4  # the admin sees all

    async def test_client_can_manage_its_tenants_subscription(
        self, api: Api, settings: Settings, db: Database
    ) -> None:
        model = await api.model()
        sub_id = await tenant_subscription(db, model, {"q": 1}, client_id="acme")
        response = await api.client.put(
            subs_path(model, sub_id), json={"status": "paused"}, headers=acme(settings, "m9")
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "paused"
