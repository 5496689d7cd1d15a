"""The job interface when Celery workers run the jobs (``IMAGEFORGE_BROKER_URL`` is set).

The API process admits, stores and streams; it runs no job. A submission is stored, then
sent to the broker; a cancel is a row change (a queued job is cancelled where it lies, and
the worker that receives its message skips it) plus a key in Redis that the running job's
worker turns into its stop flag; progress arrives through the ``EventBridge``. Its reaper
(as every worker's) re-queues a job whose worker died, so even with every worker gone a
lost job is back in the queue for the next worker to start.

What a request asks of the queue (its depth, the workers alive, a job's live progress) is
answered from memory: a refresher task reads the counts from the database and the
workers' presence from Redis once a second, so /health and status polls cost no query
per request, however many streams are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from typing import Any

from redis import asyncio as aioredis
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.config import Settings
from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import TERMINAL_STATUSES, Generation
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.job_execution import status_event
from imageforge.api.services.job_queue import CancelOutcome, QueueFullError, WorkerInfo
from imageforge.api.services.redis_events import (
    STATE_TTL_S,
    WORKERS_PATTERN,
    EventBridge,
    async_client,
    cancel_key,
    live_from_event,
    publish_event,
)
from imageforge.api.worker.celery_app import TASK_NAME, make_celery
from imageforge.api.worker.reaper import Reaper

__all__ = ["DistributedQueue"]

logger = logging.getLogger(__name__)

#: Seconds between two reads of the queue's counts and the workers' presence.
REFRESH_S = 1.0


def _cancel(session: Session, generation_id: str) -> tuple[CancelOutcome, Generation | None]:
    """Under a row lock, so a worker that starts the job at the same moment waits for the
    answer: a queued job is cancelled now, a running one is asked to stop."""
    row = session.get(Generation, generation_id, with_for_update=True)
    if row is None:
        session.rollback()
        return "unknown", None
    if row.status in TERMINAL_STATUSES:
        session.rollback()
        return "finished", row
    if row.status == "queued":
        return "cancelled", crud.mark_cancelled(
            session=session, generation_id=generation_id, step="cancelled while queued"
        )
    return "cancelling", crud.request_cancel(session=session, generation_id=generation_id)


class DistributedQueue:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        hub: EventHub,
        metrics: ServiceMetrics,
        on_change: Any = lambda generation_id: None,
    ) -> None:
        assert settings.broker_url, "distributed execution needs IMAGEFORGE_BROKER_URL"
        self.settings = settings
        self.engine = engine
        self.hub = hub
        self.metrics = metrics
        self.on_change = on_change
        self.queue_size = settings.queue_size
        self.retry_after_s = settings.retry_after_s
        self.celery = make_celery(settings)
        self.redis: aioredis.Redis = async_client(settings.broker_url)
        self.bridge = EventBridge(self.redis, hub, on_change=on_change)
        self._lock = threading.Lock()
        self._reserved = 0
        self._sent = 0  # sent since the last count, so a burst of submissions sees its own jobs
        self._counts: dict[str, int] = {}
        self._workers: list[WorkerInfo] = []
        self._refresher: asyncio.Task[None] | None = None
        self._reaping: asyncio.Task[None] | None = None
        self.reaper = Reaper(
            engine=engine,
            redis=self.redis,
            celery=self.celery,
            name=f"api-{os.getpid()}@{socket.gethostname()}",
            max_losses=settings.max_worker_losses,
            publish=self._publish,
            on_change=on_change,
        )

    # Introspection (answered from memory) ----------------------------------------------------
    @property
    def depth(self) -> int:
        return self._counts.get("queued", 0)

    @property
    def busy(self) -> int:
        return self._counts.get("running", 0)

    @property
    def workers(self) -> int:
        """Job slots across the live workers."""
        return sum(int(w.get("concurrency", 0)) for w in self._workers)

    @property
    def alive_workers(self) -> int:
        return self.workers

    def worker_list(self) -> list[WorkerInfo]:
        return list(self._workers)

    def live(self, generation_id: str) -> dict[str, Any] | None:
        state = self.bridge.live.get(generation_id)
        return dict(state) if state is not None else None

    async def catch_up(self, generation_id: str) -> None:
        try:
            await self.bridge.catch_up(generation_id)
        except Exception:  # the status document from the database is still right, only less fresh
            logger.warning("could not read the latest state of %s from Redis", generation_id, exc_info=True)

    # Lifecycle -------------------------------------------------------------------------------
    async def start(self) -> int:
        """Subscribe to the workers' events, start the refresher and the reaper (which
        re-queues what a dead worker left running). Queued jobs wait in the broker: returns 0."""
        await self.redis.ping()
        await self.bridge.start()
        await self._refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="imageforge-queue-refresher")
        self._reaping = asyncio.create_task(
            self.reaper.run_forever(self.settings.heartbeat_interval_s), name="imageforge-reaper"
        )
        return 0

    async def stop(self) -> None:
        for task in (self._refresher, self._reaping):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.bridge.stop()
        await self.redis.aclose()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not refresh the queue's counts", exc_info=True)

    async def _refresh(self) -> None:
        def count() -> dict[str, int]:
            with Session(self.engine) as session:
                return crud.count_by_status(session=session)

        counts = await asyncio.to_thread(count)
        workers: list[WorkerInfo] = []
        keys = [key async for key in self.redis.scan_iter(match=WORKERS_PATTERN, count=100)]
        if keys:
            for raw in await self.redis.mget(keys):
                if raw:
                    with contextlib.suppress(ValueError):
                        workers.append(json.loads(raw))
        with self._lock:
            self._counts = counts
            self._sent = 0
        self._workers = sorted(workers, key=lambda w: str(w.get("name", "")))

    # Submission ------------------------------------------------------------------------------
    def reserve(self) -> None:
        """The global cap across API processes, from the last count (at most a second old)
        plus what this process admitted since."""
        with self._lock:
            if self.depth + self._sent + self._reserved >= self.queue_size:
                self.metrics.rejected.inc()
                raise QueueFullError(self.queue_size, self.retry_after_s)
            self._reserved += 1

    def release(self) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    async def enqueue(self, generation_id: str, *, user_id: int | None = None) -> None:
        """Send the stored job to the broker; a job the broker refused is failed, not left queued.
        The broker's queue is first come, first served: fairness between users comes from the
        per-user cap at admission (``max_jobs_per_user``), so ``user_id`` is not needed here."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)
            self._sent += 1
        try:
            await asyncio.to_thread(self.celery.send_task, TASK_NAME, args=[generation_id])
        except Exception as exc:
            error = f"the broker refused the job: {type(exc).__name__}: {exc}"

            def fail(session: Session) -> None:
                crud.finish_generation(
                    session=session, generation_id=generation_id, status="failed", step="failed", error=error
                )

            await self._db(fail, generation_id)
            raise
        event = status_event(generation_id, "queued", 0, "queued")
        await publish_event(self.redis, generation_id, event, {"status": "queued"})

    # Cancel ----------------------------------------------------------------------------------
    async def cancel(self, generation_id: str) -> CancelOutcome:
        outcome, row = await self._db(lambda s: _cancel(s, generation_id), generation_id)
        if outcome == "cancelling":
            await self.redis.set(cancel_key(generation_id), "1", ex=STATE_TTL_S)
            live = self.live(generation_id) or {}
            event = {
                **status_event(
                    generation_id,
                    "running",
                    int(live.get("progress", row.progress if row else 0)),
                    str(live.get("current_step", row.current_step if row else "running")),
                ),
                "cancel_requested": True,
            }
            await publish_event(self.redis, generation_id, event, {**live, "status": "running"})
        elif outcome == "cancelled" and row is not None:
            self.metrics.observe_generation("cancelled", None)
            event = status_event(generation_id, "cancelled", row.progress, row.current_step)
            await publish_event(self.redis, generation_id, event, {"status": "cancelled"})
        return outcome

    async def _publish(self, generation_id: str, event: dict[str, Any]) -> None:
        await publish_event(self.redis, generation_id, event, live_from_event(None, event))

    async def _db(self, work: Any, generation_id: str) -> Any:
        def run() -> Any:
            with Session(self.engine) as session:
                try:
                    return work(session)
                finally:
                    self.on_change(generation_id)

        return await asyncio.to_thread(run)
