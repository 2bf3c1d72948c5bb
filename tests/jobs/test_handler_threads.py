"""Synchronous in-process implementations run on pool threads and hand results back in
bulk (API.md §5.1: threads for sync code); built-ins that do no work run on the loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from pie.jobs.adapters.in_process import HandlerThreads
from pie.jobs.implementations import Implementations


def whose(_argument: Any) -> int:
    return threading.get_ident()


def boom(argument: Any) -> Any:
    raise ValueError(f"bad {argument}")


async def test_calls_run_off_the_loop_and_results_come_back_in_order_of_asking() -> None:
    pool = HandlerThreads(3)
    try:
        results = await asyncio.gather(*(pool.run(lambda n: n * n, n) for n in range(200)))
        assert results == [n * n for n in range(200)]
        assert threading.get_ident() not in set(await asyncio.gather(pool.run(whose, None)))
    finally:
        pool.close()


async def test_the_pool_never_grows_past_its_size() -> None:
    pool = HandlerThreads(2)
    try:
        idents = await asyncio.gather(*(pool.run(whose, n) for n in range(50)))
        assert len(set(idents)) <= 2
    finally:
        pool.close()


async def test_an_exception_reaches_only_its_caller() -> None:
    pool = HandlerThreads(2)
    try:
        ok, failed = await asyncio.gather(
            pool.run(lambda n: n, 1), pool.run(boom, 2), return_exceptions=True
        )
        assert ok == 1
        assert isinstance(failed, ValueError)
        assert str(failed) == "bad 2"
    finally:
        pool.close()


async def test_a_call_given_up_before_it_starts_never_runs() -> None:
    pool = HandlerThreads(1)
    release = threading.Event()
    ran: list[int] = []
    try:
        blocker = pool.run(lambda _: release.wait(5), None)
        queued = pool.run(ran.append, 1)
        queued.cancel()
        release.set()
        await blocker
        await pool.run(lambda n: n, 0)  # the queue has moved past the cancelled call
        assert ran == []
    finally:
        pool.close()


@pytest.mark.parametrize(("name", "non_blocking"), [("echo", True), ("fail", True),
                         ("sleep", False), ("demo_price_train", False)])  # fmt: skip
def test_only_built_ins_that_do_no_work_skip_the_threads(name: str, non_blocking: bool) -> None:
    assert Implementations.load()[name].non_blocking is non_blocking


def test_configured_implementations_always_use_the_threads() -> None:
    assert Implementations.load({"mine": lambda job: job})["mine"].non_blocking is False
