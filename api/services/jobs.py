"""The job runner: a bounded queue feeding a fixed pool of asyncio workers.

Jobs live in the database, not in this object: a submission is stored before it is
queued, each status change is committed, and on start-up the runner re-queues what a
previous process accepted but did not finish (a job it had started resumes through the
checkpointer from its last finished scene). The in-memory parts are the queue order (round
robin between users, ``fair_queue``), the live progress of running jobs and the stop flags
that cancel them.

The workers are tasks on the API's event loop. They used to run on a second loop in their
own thread, with the interpreter's switch interval cut to 1 ms, because graph nodes made
blocking calls on their loop; now file I/O, image encoding, model calls and database calls
run in worker threads. Measured with benchmarks/bench_service.py (200 storyboards, 20
clients, 2 cores), once the collector's full passes were tamed (api.core.heap): status p99
42-45 ms and ~3 storyboards/s on one loop, 56-57 ms and ~2.35/s with the second loop
(benchmarks/README.md, "Collector pauses"). So the second loop and the setting are gone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import Generation
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.fair_queue import FairQueue
from imageforge.api.services.job_execution import Job, JobExecutor, status_event
from imageforge.api.services.job_queue import CancelOutcome, QueueFullError, WorkerInfo
from imageforge.api.services.pipeline import Pipeline
from imageforge.traces.retention import RetentionPolicy

__all__ = ["CancelOutcome", "CheckpointerFactory", "JobRunner", "QueueFullError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
CheckpointerFactory = Callable[[], AbstractAsyncContextManager[BaseCheckpointSaver | None]]


def _mark_cancelled(session: Session, *, generation_id: str) -> object:
    return crud.mark_cancelled(session=session, generation_id=generation_id, step="cancelled")


def _owner(session: Session, *, generation_id: str) -> int | None:
    row = session.get(Generation, generation_id)
    return row.user_id if row is not None else None


class JobRunner:
    def __init__(
        self,
        *,
        engine: Engine,
        pipeline: Pipeline,
        checkpointer: CheckpointerFactory,
        trace_root: Path,
        workers: int,
        queue_size: int,
        retry_after_s: int,
        hub: EventHub,
        metrics: ServiceMetrics,
        on_change: Callable[[str], None] = lambda generation_id: None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"`workers` must be at least 1, got {workers!r}.")
        if queue_size < 1:
            raise ValueError(f"`queue_size` must be at least 1, got {queue_size!r}.")
        self.engine = engine
        self.checkpointer_factory = checkpointer
        self.trace_root = trace_root
        self.workers = workers
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self.hub = hub
        self.metrics = metrics
        self.executor = JobExecutor(
            engine=engine,
            pipeline=pipeline,
            trace_root=trace_root,
            metrics=metrics,
            publish=self._publish,
            on_change=on_change,
            retention=retention,
        )
        self._lock = threading.Lock()  # guards _pending, _reserved and _jobs; /health reads them from the thread pool
        self._pending = FairQueue()  # round-robin between users: one user's burst cannot starve the rest
        self._reserved = 0
        self._jobs: dict[str, Job] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scope: AsyncExitStack | None = None
        self._ready: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # Introspection (any thread) ----------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def busy(self) -> int:
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.running)

    @property
    def alive_workers(self) -> int:
        return sum(1 for task in list(self._tasks) if not task.done())

    def live(self, generation_id: str) -> dict[str, Any] | None:
        job = self._jobs.get(generation_id)
        return dict(job.live) if job is not None and job.running else None

    def worker_list(self) -> list[WorkerInfo]:
        """This process is the one worker: it runs jobs beside the API."""
        return [{"name": "embedded", "concurrency": self.workers, "running": self.busy}]

    async def catch_up(self, generation_id: str) -> None:
        """Nothing to load: every event of a job that runs here passes through this process."""

    @property
    def checkpointer(self) -> BaseCheckpointSaver | None:
        return self.executor.checkpointer

    # Lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> int:
        """Re-queue unfinished jobs, open the checkpointer and start the workers (tasks on the
        running loop, the API's). Returns how many jobs were recovered."""
        self._loop = asyncio.get_running_loop()
        recovered = await self._db(
            lambda s: [(g.id, g.cancel_requested, g.user_id) for g in crud.recoverable_generations(session=s)]
        )
        for generation_id, cancel_requested, user_id in recovered:
            if cancel_requested:
                await self._db(partial(_mark_cancelled, generation_id=generation_id), changes=generation_id)
                continue
            with self._lock:
                self._jobs[generation_id] = Job(generation_id)
                self._pending.push(user_id, generation_id)
        scope = AsyncExitStack()
        self.executor.checkpointer = await scope.enter_async_context(self.checkpointer_factory())
        self._scope = scope
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._worker(), name=f"imageforge-worker-{i}") for i in range(self.workers)]
        self._ready.set()
        return len(self._pending)

    async def stop(self) -> None:
        """Stop the workers. Running jobs stay ``running`` in the database and resume next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._scope is not None:
            await self._scope.aclose()
            self._scope = None

    # Submission ------------------------------------------------------------------------------
    def reserve(self) -> None:
        """Claim a queue slot before storing a job, so a full queue rejects it with nothing stored."""
        with self._lock:
            if len(self._pending) + self._reserved >= self.queue_size:
                self.metrics.rejected.inc()
                raise QueueFullError(self.queue_size, self.retry_after_s)
            self._reserved += 1

    def release(self) -> None:
        """Give back a reserved slot whose job was not stored."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    async def enqueue(self, generation_id: str, *, user_id: int | None = None) -> None:
        """Queue a stored job on a slot from :meth:`reserve`, in its owner's turn (the owner is
        read from the job's row when the caller does not say)."""
        if user_id is None:
            user_id = await self._db(partial(_owner, generation_id=generation_id))
        with self._lock:
            self._reserved = max(0, self._reserved - 1)
            self._jobs[generation_id] = Job(generation_id)
            self._pending.push(user_id, generation_id)
        self.hub.publish(generation_id, status_event(generation_id, "queued", 0, "queued"))
        assert self._ready is not None, "the runner was not started"
        self._ready.set()

    # Cancel ----------------------------------------------------------------------------------
    async def cancel(self, generation_id: str) -> CancelOutcome:
        """Cancel one job: a queued one at once, a running one at its next node boundary."""
        with self._lock:
            job = self._jobs.get(generation_id)
            running = job is not None and job.running
            if running:
                job.stop = True  # type: ignore[union-attr]
            elif self._pending.remove(generation_id):
                self._jobs.pop(generation_id, None)
        if running and job is not None:
            await self._db(lambda s: crud.request_cancel(session=s, generation_id=generation_id), changes=generation_id)
            progress = job.progress()
            event = status_event(generation_id, "running", progress["progress"], progress["current_step"])
            self.hub.publish(generation_id, {**event, "cancel_requested": True})
            return "cancelling"
        row = await self._db(
            lambda s: crud.mark_cancelled(session=s, generation_id=generation_id, step="cancelled while queued"),
            changes=generation_id,
        )
        if row is None:
            return "unknown"
        if row.status == "cancelled":
            self.hub.publish(generation_id, status_event(generation_id, "cancelled", row.progress, row.current_step))
            self.metrics.observe_generation("cancelled", None)
            return "cancelled"
        return "finished"

    # Workers -----------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._lock:
            generation_id = self._pending.pop()
            if generation_id is None:
                assert self._ready is not None
                self._ready.clear()  # under the lock: an enqueue after this sets it again
                return None
            job = self._jobs.setdefault(generation_id, Job(generation_id))
            job.running = True  # from here a cancel sets the stop flag instead of dequeuing
            return job

    async def _worker(self) -> None:
        assert self._ready is not None
        while True:
            job = self._next()
            if job is None:
                await self._ready.wait()
                continue
            try:
                await self.executor.run(job)
            finally:
                with self._lock:
                    self._jobs.pop(job.generation_id, None)

    # Helpers -----------------------------------------------------------------------------------
    def _publish(self, generation_id: str, event: dict[str, Any]) -> None:
        self.hub.publish(generation_id, event)

    async def _db(self, work: Callable[[Session], T], *, changes: str | None = None) -> T:
        return await self.executor.db(work, changes=changes)
