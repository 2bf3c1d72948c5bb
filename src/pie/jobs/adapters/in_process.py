"""Run registered Python implementations: async ones on the loop, sync ones in a pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

from pie.core.clock import utcnow
from pie.jobs.adapters.base import DispatchRequest, Done, Outcome
from pie.jobs.implementations import Implementations

log = structlog.get_logger("pie.jobs.in_process")


Call = tuple[Callable[[Any], Any], Any, "asyncio.Future[Any]"]


class HandlerThreads:
    """A bounded pool of threads for synchronous implementations.

    Unlike ``run_in_executor`` (one concurrent future, one chained asyncio future and one
    wake-up of the event loop per call), each thread loops on one queue and hands results
    back in bulk: the loop is woken once for every result that arrived since it last
    looked. At thousands of short jobs a second that per-call overhead was the
    dispatcher's largest cost after the database.
    """

    def __init__(self, size: int, *, name: str = "pie-handler") -> None:
        self._size, self._name = size, name
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
        self._done = {}
        self._threads: list[threading.Thread] = []

    def run(self, target: Callable[[Any], Any], argument: Any) -> asyncio.Future[Any]:
        """``target(argument)`` on a pool thread; the future resolves on the calling loop."""
        future = asyncio.get_running_loop().create_future()
        if len(self._threads) < self._size:  # grow on demand, like ThreadPoolExecutor
            thread = threading.Thread(
                target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._calls.put((target, argument, future))
        return future

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            target, argument, future = call
            if future.cancelled():  # given up (cancel, deadline) before it started
                continue
            try:
                outcome: tuple[bool, Any] = (True, target(argument))
            except BaseException as error:  # like ThreadPoolExecutor: the caller decides
                outcome = (False, error)
            loop = future.get_loop()
            with self._lock:
                waiting = self._done.get(loop)
                first = waiting is None
                if first:
                    waiting = self._done[loop] = []
                waiting.append((future, *outcome))  # type: ignore[union-attr]
            if first:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._deliver, loop)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            done = self._done.pop(loop, [])
        for future, ok, value in done:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        for _thread in self._threads:
            self._calls.put(None)
        self._threads = []


class InProcessAdapter:
    inline = True

    def __init__(self, implementations: Implementations, *, threads: int) -> None:
        self._implementations = implementations
        self._pool = HandlerThreads(threads)

    async def dispatch(self, request: DispatchRequest) -> Outcome:
        name = str(request.handler.get("value", ""))
        registered = self._implementations.get(name)
        if registered is None:
            return Done(
                "failure",
                error={
                    "code": "handler_error",
                    "type": "LookupError",
                    "message": f"no in-process implementation '{name}'",
                },
            )
        try:
            if registered.non_blocking:  # returns at once: no thread, no timer
                output = registered.target(request.payload)
            else:
                timeout = max((request.deadline - utcnow()).total_seconds(), 0.0)
                async with asyncio.timeout(timeout):
                    if registered.is_async:
                        output = await registered.target(request.payload)
                    else:
                        output = await self._pool.run(registered.target, request.payload)
            json.dumps(output)  # what a handler returns must be storable as JSON
        except TimeoutError:
            return Done(
                "failure", error={"code": "timeout", "message": "the job passed its deadline"}
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the handler's failure is the job's, never PIE's
            log.exception("handler_error", job_id=request.job_id, handler=name)
            return Done(
                "failure",
                error={
                    "code": "handler_error",
                    "type": type(error).__name__,
                    "message": str(error)[:1000],
                },
            )
        return Done("success", output=output)

    async def cancel(self, handler: dict[str, Any], external_ref: str | None) -> None:
        """Running coroutines are cancelled by the dispatcher that runs them."""

    def close(self) -> None:
        self._pool.close()
