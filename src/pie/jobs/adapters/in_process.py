"""Run registered Python implementations: async ones on the loop, sync ones in a pool."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from pie.core.clock import utcnow
from pie.jobs.adapters.base import DispatchRequest, Done, Outcome
from pie.jobs.implementations import Implementations

log = structlog.get_logger("pie.jobs.in_process")


class InProcessAdapter:
    inline = True

    def __init__(self, implementations: Implementations, *, threads: int) -> None:
        self._implementations = implementations
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pie-handler")

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
        timeout = max((request.deadline - utcnow()).total_seconds(), 0.0)
        try:
            if registered.is_async:
                run = registered.target(request.payload)
            else:
                loop = asyncio.get_running_loop()
                run = loop.run_in_executor(self._pool, registered.target, request.payload)
            output = await asyncio.wait_for(run, timeout=timeout)
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
        self._pool.shutdown(wait=False, cancel_futures=True)
