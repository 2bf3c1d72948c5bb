"""The dispatcher: claims due jobs with leases and hands them to their adapters.

Runs inside ``pie serve`` (embedded) or as ``pie worker`` processes; any number share one
database. New jobs wake it at once (in-process signal; ``LISTEN/NOTIFY`` on PostgreSQL);
a short safety poll covers retries coming due and missed signals. A maintenance tick
renews the leases of in-process jobs it is running, re-claims jobs whose worker died,
fails started jobs past their deadline, and forgets expired idempotency keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import structlog

from pie.auth.callback import callback_secret, mint_callback_token
from pie.core.clock import utcnow
from pie.core.ids import new_id
from pie.db.database import Database
from pie.db.events import JOB_DONE, NEW_JOBS
from pie.jobs import service
from pie.jobs.adapters import Adapters
from pie.jobs.adapters.base import DispatchRequest, Done, Fatal, Retry, Started
from pie.jobs.metrics import JobMetrics
from pie.settings import Settings

log = structlog.get_logger("pie.dispatcher")
_KEY_CLEANUP_SECONDS = 300.0
_MAINTENANCE_STOP_SECONDS = 30.0
_FINISH_BATCH = 256


class Finisher:
    """Group commit of results: what ended while one batch committed goes in the next.

    A caller waits until its result is committed (or dropped: see
    :func:`service.finish_attempts`). No waiting to fill a batch: one result alone is
    written at once. A batch whose transaction fails is retried one result at a time, so
    one bad job cannot hold back the others; each of those failures goes to its caller.
    """

    def __init__(self, db: Database, *, batch: int = _FINISH_BATCH) -> None:
        self.db = db
        self.batch = batch
        self._queue: list[tuple[service.Result, asyncio.Future[object]]] = []
        self._task: asyncio.Task[None] | None = None

    async def finish(self, result: service.Result) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((result, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(), name="pie-dispatcher-finisher")
        return await future

    async def _write(self) -> None:
        while self._queue:
            taken, self._queue = self._queue[: self.batch], self._queue[self.batch :]
            batch = [(result, future) for result, future in taken if not future.done()]
            if not batch:
                continue
            if len(batch) > 1:
                try:
                    answers = await service.finish_attempts(self.db, [r for r, _f in batch])
                except Exception:
                    log.exception("finish_batch_failed", jobs=len(batch))
                else:
                    for (_result, future), answer in zip(batch, answers, strict=True):
                        if not future.done():
                            future.set_result(answer)
                    continue
            for result, future in batch:  # alone, or again one by one
                try:
                    [answer] = await service.finish_attempts(self.db, [result])
                except Exception as error:
                    if not future.done():
                        future.set_exception(error)
                else:
                    if not future.done():
                        future.set_result(answer)

    async def stop(self) -> None:
        """Let the batch being written finish (a cancelled write could leave its
        connection unusable)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        adapters: Adapters,
        *,
        concurrency: int | None = None,
        owner: str | None = None,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.adapters = adapters
        self.concurrency = concurrency or settings.dispatcher_concurrency
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-12:]}"
        self._secret = callback_secret(settings)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._halt = asyncio.Event()  # ends the maintenance loop, after the drain
        self._inflight: dict[str, tuple[service.Claimed, asyncio.Task[None]]] = {}
        self._last_cleanup = 0.0
        self._watchers: set[asyncio.Task[None]] = set()
        self._finishing: set[str] = set()
        self._finisher = Finisher(db)
        self.metrics = metrics
        # The last claim filled every free slot, so jobs may be waiting for one: a finished
        # job then wakes the loop. Otherwise the queue was empty, and a new job's signal
        # (or the safety poll, for retries coming due) wakes it instead of an empty claim,
        # a write transaction, after every job.
        self._backlog = False

    # -- lifecycle ------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until :meth:`stop`; then drain in-flight jobs (or give them back)."""
        await self.db.events.start()
        unlisten = [
            self.db.events.listen(NEW_JOBS, lambda _payload: self.wake()),
            self.db.events.listen(JOB_DONE, self._on_job_done),
        ]
        maintenance = asyncio.create_task(self._maintain(), name="pie-dispatcher-maintenance")
        log.info("dispatcher_started", owner=self.owner, concurrency=self.concurrency)
        try:
            await self._loop()
        finally:
            self._stopping.set()
            try:
                await self._drain()  # maintenance keeps renewing the leases meanwhile
            finally:
                # Let a maintenance pass finish instead of cancelling it mid-transaction
                # (a cancelled database call can leave its connection unusable).
                self._halt.set()
                try:
                    await asyncio.wait_for(maintenance, timeout=_MAINTENANCE_STOP_SECONDS)
                except TimeoutError:
                    log.warning("maintenance_stop_timed_out")
            await self._finisher.stop()
            for stop in unlisten:
                stop()
            if self._watchers:  # short reads; let them end rather than cut them off
                await asyncio.gather(*self._watchers, return_exceptions=True)
            await self.db.events.stop()
            log.info("dispatcher_stopped", owner=self.owner)

    async def stop(self) -> None:
        self._stopping.set()
        self.wake()

    async def _loop(self) -> None:
        # Refill in batches: with jobs still running, wait until a quarter of the slots are
        # free rather than paying a claim transaction (a commit) per finished job.
        refill = max(1, self.concurrency // 4)
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            if free >= refill or (free > 0 and not self._inflight):
                try:
                    claimed = await service.claim(
                        self.db, self.settings, owner=self.owner, limit=free
                    )
                except Exception:  # the database may be restarting: back off, keep going
                    log.exception("claim_failed")
                    await self._sleep(self.settings.dispatcher_poll_seconds)
                    continue
                for job in claimed:
                    self._spawn(job)
                self._backlog = len(claimed) == free
                if self._backlog:
                    continue  # the queue may hold more; claim again as slots free up
            await self._sleep(self.settings.dispatcher_poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _drain(self) -> None:
        running = [task for _job, task in self._inflight.values()]
        if running:
            log.info("dispatcher_draining", jobs=len(running))
            await asyncio.wait(running, timeout=self.settings.shutdown_grace_seconds)
        leftover = list(self._inflight.values())
        for _job, task in leftover:
            task.cancel()
        if leftover:
            await asyncio.gather(*(t for _j, t in leftover), return_exceptions=True)
            held = [(job.job_id, job.attempt) for job, _task in leftover]
            with contextlib.suppress(Exception):
                await service.release_leases(self.db, held)
            log.info("dispatcher_released_jobs", jobs=len(held))

    # -- running one job ------------------------------------------------------------------------

    def _spawn(self, job: service.Claimed) -> None:
        task = asyncio.create_task(self._run(job), name=f"pie-job-{job.job_id}")
        self._inflight[job.job_id] = (job, task)

        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(job.job_id, None)
            if self._backlog:
                self.wake()

        task.add_done_callback(done)

    def _on_job_done(self, job_id: str) -> None:
        """A job we are running ended elsewhere (cancelled): stop running it."""
        entry = self._inflight.get(job_id)
        if entry is None or entry[1].done() or entry[0].handler.get("type") != "in_process":
            return
        if job_id in self._finishing:  # our own completion, not a cancel
            return
        watcher = asyncio.get_running_loop().create_task(self._stop_if_cancelled(job_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _stop_if_cancelled(self, job_id: str) -> None:
        with contextlib.suppress(Exception):
            if await service.is_cancelled(self.db, job_id):
                entry = self._inflight.get(job_id)
                if entry is not None:
                    entry[1].cancel()
                    log.info("running_job_cancelled", job_id=job_id)

    def _request(self, job: service.Claimed, *, external: bool) -> DispatchRequest:
        callback = None
        job_url = None
        if external:
            base = self.settings.base_url
            callback = {
                "complete_url": (
                    f"{base}/v2/models/{job.model_id}/versions/{job.model_version}"
                    f"/jobs/{job.job_id}/complete"
                ),
                "token": mint_callback_token(self._secret, job.job_id, job.deadline),
            }
            job_url = f"{base}/v2/jobs/{job.job_id}/payload"
        return DispatchRequest(
            job_id=job.job_id,
            job_type=job.job_type,
            handler=job.handler,
            payload=job.payload,
            deadline=job.deadline,
            callback=callback,
            job_url=job_url,
        )

    async def _run(self, job: service.Claimed) -> None:
        # The task runs in its own copy of the context: binding needs no undoing.
        structlog.contextvars.bind_contextvars(job_id=job.job_id, attempt=job.attempt)
        try:
            await self._dispatch(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug, or the database went away
            log.exception("dispatch_crashed")
            # Counted like a failed dispatch, so a job that always crashes us ends
            # `dispatch_failed` instead of cycling through lease expiries forever.
            with contextlib.suppress(Exception):
                await service.retry_later(
                    self.db, self.settings, job, f"internal error: {type(error).__name__}"
                )

    def _handed_over(self, job: service.Claimed) -> None:
        if self.metrics is not None:
            waited = (utcnow() - job.created_at).total_seconds()
            self.metrics.dispatch_latency.labels(str(job.handler.get("type"))).observe(waited)

    async def _dispatch(self, job: service.Claimed) -> None:
        adapter = self.adapters.for_handler(job.handler)
        if adapter.inline:
            # The claim already moved a pending in-process job to `started`.
            if job.status != "started" and not await service.mark_started(
                self.db, job, hold_lease=True
            ):
                return
            if job.attempt == 1:
                self._handed_over(job)
            outcome = await adapter.dispatch(self._request(job, external=False))
        else:
            outcome = await adapter.dispatch(self._request(job, external=True))
        if isinstance(outcome, Done):
            self._finishing.add(job.job_id)
            try:
                await self._finisher.finish(
                    service.Result(job, outcome.status, output=outcome.output, error=outcome.error)
                )
            finally:
                self._finishing.discard(job.job_id)
        elif isinstance(outcome, Started):
            if await service.mark_started(
                self.db, job, external_ref=outcome.external_ref, hold_lease=False
            ):
                self._handed_over(job)
            else:
                log.warning("started_job_no_longer_ours")
        elif isinstance(outcome, Retry):
            log.warning("dispatch_failed_transiently", reason=outcome.message)
            await service.retry_later(self.db, self.settings, job, outcome.message)
        elif isinstance(outcome, Fatal):
            log.error("dispatch_failed", reason=outcome.message)
            await service.retry_later(self.db, self.settings, job, outcome.message, fatal=True)

    # -- maintenance ----------------------------------------------------------------------------

    async def _maintain(self) -> None:
        interval = min(self.settings.dispatcher_poll_seconds, self.settings.lease_seconds / 3)
        while not self._halt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halt.wait(), timeout=interval)
            if self._halt.is_set():
                return
            try:
                await self._maintain_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("maintenance_failed")

    async def _maintain_once(self) -> None:
        held = [
            (job.job_id, job.attempt)
            for job, task in self._inflight.values()
            if not task.done() and job.handler.get("type") == "in_process"
        ]
        await service.renew_leases(self.db, self.settings, held)
        free = self.concurrency - len(self._inflight)
        if free > 0 and not self._stopping.is_set():
            for job in await service.claim(
                self.db, self.settings, owner=self.owner, limit=free, expired=True
            ):
                log.warning("reclaimed_expired_lease", job_id=job.job_id, attempt=job.attempt)
                self._spawn(job)
        await service.expire_overdue(self.db, self.adapters)
        if self.metrics is not None:
            self.metrics.queue_depth.set(await service.pending_count(self.db))
        now = time.monotonic()
        if now - self._last_cleanup > _KEY_CLEANUP_SECONDS:
            self._last_cleanup = now
            await service.forget_expired_keys(self.db)
