"""The job runner: a bounded queue feeding a fixed pool of asyncio workers.

Jobs live in the database, not in this object: a submission is stored before it is
queued, each status change is committed, and on start-up the runner re-queues what a
previous process accepted but did not finish (a job it had started resumes through the
checkpointer from its last finished scene). The in-memory parts are the queue order, the
live progress of running jobs and the stop flags that cancel them.

The workers run on their own event loop in a dedicated thread. A storyboard does real work
on its loop (the agents, LangGraph's bookkeeping, trace writes), and sharing the API's loop
would make every status request wait for whichever node happened to be running; on a
separate loop the two only share the interpreter, which switches between them every few
milliseconds. Progress events cross back to the API's loop for the subscribers. Database
calls go to worker threads on both loops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import TERMINAL_STATUSES, JobSpec
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.pipeline import Pipeline
from imageforge.api.services.retention import run_after_finish
from imageforge.graph.progress import ProgressTracker
from imageforge.traces import layout
from imageforge.traces.retention import RetentionPolicy
from imageforge.traces.schemas import RunSummary, SceneResult

__all__ = ["CancelOutcome", "CheckpointerFactory", "JobRunner", "QueueFullError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
CancelOutcome = Literal["cancelled", "cancelling", "finished", "unknown"]
CheckpointerFactory = Callable[[], AbstractAsyncContextManager[BaseCheckpointSaver | None]]


def _mark_cancelled(session: Session, *, generation_id: str, step: str) -> object:
    return crud.mark_cancelled(session=session, generation_id=generation_id, step=step)


def _record_scene(session: Session, *, generation_id: str, result: SceneResult, trace_dir: Path) -> object:
    return crud.record_scene(session=session, generation_id=generation_id, result=result, trace_dir=trace_dir)


class QueueFullError(RuntimeError):
    """No room in the queue; the client should retry after ``retry_after_s``."""

    def __init__(self, queue_size: int, retry_after_s: int) -> None:
        super().__init__(f"the job queue is full ({queue_size} waiting); retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Job:
    generation_id: str
    running: bool = False
    stop: bool = False
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    scene: int | None = None
    recorded: set[int] = field(default_factory=set)
    live: dict[str, Any] = field(default_factory=dict)


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
        self.pipeline = pipeline
        self.checkpointer_factory = checkpointer
        self.checkpointer: BaseCheckpointSaver | None = None
        self.trace_root = trace_root
        self.workers = workers
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self.hub = hub
        self.metrics = metrics
        self.on_change = on_change  # told after every write to a generation (cache invalidation)
        self.retention = retention  # mode 'delete_on_success' removes a completed run's trace here
        self._lock = threading.Lock()  # guards _pending, _reserved and _jobs across the two loops
        self._pending: deque[str] = deque()
        self._reserved = 0
        self._jobs: dict[str, _Job] = {}
        self._api_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
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

    # Lifecycle (the API's loop) ----------------------------------------------------------------
    async def start(self) -> int:
        """Re-queue unfinished jobs, then start the workers. Returns how many were recovered."""
        self._api_loop = asyncio.get_running_loop()
        recovered = await self._db(
            lambda s: [(g.id, g.cancel_requested) for g in crud.recoverable_generations(session=s)]
        )
        for generation_id, cancel_requested in recovered:
            if cancel_requested:
                await self._db(
                    partial(_mark_cancelled, generation_id=generation_id, step="cancelled"), changes=generation_id
                )
                continue
            with self._lock:
                self._jobs[generation_id] = _Job(generation_id)
                self._pending.append(generation_id)
        started: asyncio.Future[None] = self._api_loop.create_future()
        self._thread = threading.Thread(target=self._thread_main, args=(started,), name="imageforge-jobs", daemon=True)
        self._thread.start()
        await started
        return len(self._pending)

    async def stop(self) -> None:
        """Stop the workers. Running jobs stay ``running`` in the database and resume next start."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _thread_main(self, started: asyncio.Future[None]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as exc:  # reported to start() if it failed before starting
            logger.exception("the job runner's loop stopped")
            self._resolve(started, exc)

    def _resolve(self, future: asyncio.Future[None], error: BaseException | None) -> None:
        assert self._api_loop is not None

        def settle() -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self._api_loop.call_soon_threadsafe(settle)

    async def _serve(self, started: asyncio.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        async with self.checkpointer_factory() as checkpointer:
            self.checkpointer = checkpointer
            self._tasks = [
                asyncio.create_task(self._worker(), name=f"imageforge-worker-{i}") for i in range(self.workers)
            ]
            self._ready.set()
            self._resolve(started, None)
            await self._stopping.wait()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # Submission (the API's loop) ---------------------------------------------------------------
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

    async def enqueue(self, generation_id: str) -> None:
        """Queue a stored job on a slot from :meth:`reserve`."""
        with self._lock:
            self._reserved = max(0, self._reserved - 1)
            self._jobs[generation_id] = _Job(generation_id)
            self._pending.append(generation_id)
        self.hub.publish(generation_id, self._status_event(generation_id, "queued", 0, "queued"))
        assert self._loop is not None and self._ready is not None, "the runner was not started"
        self._loop.call_soon_threadsafe(self._ready.set)

    # Cancel (the API's loop) -------------------------------------------------------------------
    async def cancel(self, generation_id: str) -> CancelOutcome:
        """Cancel one job: a queued one at once, a running one at its next node boundary."""
        with self._lock:
            job = self._jobs.get(generation_id)
            running = job is not None and job.running
            if running:
                job.stop = True  # type: ignore[union-attr]
            elif generation_id in self._pending:
                self._pending.remove(generation_id)
                self._jobs.pop(generation_id, None)
        if running:
            await self._db(lambda s: crud.request_cancel(session=s, generation_id=generation_id), changes=generation_id)
            self.hub.publish(
                generation_id,
                {**self._status_event(generation_id, "running", **self._progress(job)), "cancel_requested": True},  # type: ignore[arg-type]
            )
            return "cancelling"
        row = await self._db(
            lambda s: crud.mark_cancelled(session=s, generation_id=generation_id, step="cancelled while queued"),
            changes=generation_id,
        )
        if row is None:
            return "unknown"
        if row.status == "cancelled":
            self.hub.publish(
                generation_id, self._status_event(generation_id, "cancelled", row.progress, row.current_step)
            )
            self.metrics.observe_generation("cancelled", None)
            return "cancelled"
        return "finished"

    # Workers (the runner's loop) ---------------------------------------------------------------
    def _next(self) -> _Job | None:
        with self._lock:
            if not self._pending:
                assert self._ready is not None
                self._ready.clear()  # under the lock: an enqueue after this sets it again
                return None
            generation_id = self._pending.popleft()
            job = self._jobs.setdefault(generation_id, _Job(generation_id))
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
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bookkeeping failure must not kill the worker
                logger.exception("job %s: the runner failed", job.generation_id)
                await self._fail(job, "internal error in the job runner; see the server log")
            finally:
                with self._lock:
                    self._jobs.pop(job.generation_id, None)

    async def _run(self, job: _Job) -> None:
        generation_id = job.generation_id
        row = await self._db(
            lambda s: crud.start_generation(session=s, generation_id=generation_id), changes=generation_id
        )
        if row is None:  # cancelled or removed while it waited
            self._publish(generation_id, self._status_event(generation_id, "cancelled", 0, "cancelled"))
            return
        spec = JobSpec.model_validate(row.request)
        resume = row.runs > 1
        job.tracker.progress = float(row.progress)
        job.live = {"progress": row.progress, "current_step": row.current_step, "scene": None}
        self._publish(generation_id, self._status_event(generation_id, "running", row.progress, row.current_step))
        summary: RunSummary | None = None
        if job.stop:
            status, error = "cancelled", None
        else:
            try:
                summary = await self.pipeline(
                    generation_id,
                    spec,
                    checkpointer=self.checkpointer,
                    resume=resume,
                    on_event=lambda event: self._on_event(job, event),
                    should_stop=lambda: job.stop,
                )
            except asyncio.CancelledError:
                raise  # shutting down: the job stays "running" and resumes at the next start
            except Exception as exc:
                logger.exception("job %s failed", generation_id)
                status, error = "failed", f"{type(exc).__name__}: {exc}"
            else:
                status = summary.status if summary.status in TERMINAL_STATUSES else "failed"
                error = summary.error
        await self._finish(job, summary, status, error)

    async def _finish(self, job: _Job, summary: RunSummary | None, status: str, error: str | None) -> None:
        generation_id = job.generation_id
        trace_dir = layout.generation_dir(self.trace_root, generation_id)
        if summary is not None:
            missing = [s for s in summary.scenes if s.scene_number not in job.recorded]
            for scene in missing:
                await self._db(
                    partial(_record_scene, generation_id=generation_id, result=scene, trace_dir=trace_dir),
                    changes=generation_id,
                )
        step = {"completed": "done", "cancelled": "cancelled", "failed": "failed"}.get(status, status)
        row = await self._db(
            lambda s: crud.finish_generation(
                session=s,
                generation_id=generation_id,
                status=status,
                step=step,
                error=error,
                warnings=summary.warnings if summary else None,
                backends=summary.backends if summary else None,
                plan=summary.plan.model_dump(mode="json") if summary and summary.plan else None,
            ),
            changes=generation_id,
        )
        self.metrics.observe_generation(status, row.elapsed_s if row is not None else None)
        progress = row.progress if row is not None else int(job.tracker.progress)
        self._publish(generation_id, {**self._status_event(generation_id, status, progress, step), "error": error})
        if status in ("completed", "cancelled") and self.checkpointer is not None:
            try:
                await self.checkpointer.adelete_thread(generation_id)
            except Exception:  # the checkpoint is only a resume aid; keeping it is harmless
                logger.warning("job %s: could not delete its checkpoints", generation_id, exc_info=True)
        if self.retention is not None and self.retention.mode == "delete_on_success":
            await asyncio.to_thread(
                run_after_finish, self.trace_root, generation_id, status=status, policy=self.retention
            )

    async def _fail(self, job: _Job, error: str) -> None:
        try:
            await self._finish(job, None, "failed", error)
        except Exception:
            logger.exception("job %s: could not record the failure", job.generation_id)

    async def _on_event(self, job: _Job, event: dict[str, Any]) -> None:
        """Track progress, persist plans and finished scenes, fan the event out."""
        generation_id = job.generation_id
        kind = event.get("type")
        data = event.get("data") or {}
        job.tracker.update(event)
        if event.get("scene") is not None and kind in ("scene_started", "attempt_started"):
            job.scene = int(event["scene"])
        progress, step = int(job.tracker.progress), job.tracker.step
        job.live = {"progress": progress, "current_step": step, "scene": job.scene}
        try:
            if kind == "plan_ready":
                plan = {"scenes": data.get("scenes", []), "markers": data.get("markers"), "source": data.get("source")}
                await self._db(
                    lambda s: crud.set_plan(
                        session=s, generation_id=generation_id, plan=plan, progress=progress, step=step
                    ),
                    changes=generation_id,
                )
            elif kind == "scene_done" and "result" in data:
                result = SceneResult.model_validate(data["result"])
                trace_dir = layout.generation_dir(self.trace_root, generation_id)
                await self._db(
                    lambda s: crud.record_scene_progress(
                        session=s,
                        generation_id=generation_id,
                        result=result,
                        trace_dir=trace_dir,
                        progress=progress,
                        step=step,
                    ),
                    changes=generation_id,
                )
                job.recorded.add(result.scene_number)
                self.metrics.observe_scene(result)
        except Exception:  # the final summary reconciles what an event failed to store
            logger.exception("job %s: could not persist a %s event", generation_id, kind)
        self._publish(
            generation_id, {**event, "generation_id": generation_id, "progress": progress, "current_step": step}
        )

    # Helpers -----------------------------------------------------------------------------------
    def _publish(self, generation_id: str, event: dict[str, Any]) -> None:
        """Hand an event to the hub, which lives on the API's loop."""
        assert self._api_loop is not None
        if not self._api_loop.is_closed():
            self._api_loop.call_soon_threadsafe(self.hub.publish, generation_id, event)

    @staticmethod
    def _progress(job: _Job) -> dict[str, Any]:
        return {"progress": int(job.tracker.progress), "current_step": job.tracker.step}

    @staticmethod
    def _status_event(generation_id: str, status: str, progress: int, current_step: str) -> dict[str, Any]:
        return {
            "type": "status",
            "generation_id": generation_id,
            "status": status,
            "progress": progress,
            "current_step": current_step,
        }

    async def _db(self, work: Callable[[Session], T], *, changes: str | None = None) -> T:
        """Run ``work`` in a worker thread; ``changes`` names the generation it writes to."""

        def run() -> T:
            with Session(self.engine) as session:
                try:
                    return work(session)
                finally:
                    if changes is not None:
                        self.on_change(changes)

        return await asyncio.to_thread(run)
