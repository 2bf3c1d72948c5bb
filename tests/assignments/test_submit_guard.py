"""The submit hot path reads outside the write lock, so its insert re-checks what it read:
a job is stored only while its assignment, domain and client are still active."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select

from pie.assignments.repository import add_job_if_assigned, job_target
from pie.db import tables
from pie.jobs.creation import Tenant, new_job
from tests.assignments.factories import World


async def _jobs(world: World) -> int:
    async with world.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(tables.Job)) or 0)


async def _insert_after(world: World, change: Callable[[], Awaitable[object]]) -> bool:
    """Read the target as the hot path does, apply ``change``, then try the guarded insert."""
    await world.assign("default")
    async with world.db.read() as session:
        target = await job_target(session, world.client_id, world.domain_id, "default")
    assert target is not None
    assert target.assignment_id is not None
    assert target.version is not None
    await change()
    job = new_job(
        job_type="inference",
        version=target.version,
        input={},
        created_by="guard-test",
        tenant=Tenant(world.client_id, world.domain_id, assignment_id=target.assignment_id),
    )
    async with world.db.transaction() as session:
        return await add_job_if_assigned(session, job, target.assignment_id)


async def _nothing() -> None:
    return None


async def test_unchanged_target_inserts_the_job(world: World) -> None:
    assert await _insert_after(world, _nothing)
    assert await _jobs(world) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda w: w.set_domain_status("inactive"),
        lambda w: w.suspend_client(),
        lambda w: w.assign("default", "2.0.0"),  # a new revision replaces the one read
    ],
    ids=["domain-deactivated", "client-suspended", "key-reassigned"],
)
async def test_a_change_after_the_read_stores_nothing(
    world: World, change: Callable[[World], Awaitable[object]]
) -> None:
    assert not await _insert_after(world, lambda: change(world))
    assert await _jobs(world) == 0


async def test_the_route_falls_back_and_answers_for_the_new_state(world: World) -> None:
    """End to end: after a reassignment the job runs the version assigned now."""
    await world.assign("default")
    await world.assign("default", "2.0.0")
    job = await world.job(await world.job_id("default"))
    assert job["model_version"] == "2.0.0"
