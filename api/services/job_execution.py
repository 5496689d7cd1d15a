"""Running one stored job: the part the embedded runner and a Celery worker share.

A job's life in the database (start, plan, finished scenes, final status) and the events it
emits are the same wherever it runs; only where the events go (the API's hub, or Redis for
the API processes to pick up) and how a job is claimed (a queue slot, or a lease) differ,
so those come in as arguments. Database calls run in worker threads; no session is held
across an ``await``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import TERMINAL_STATUSES, Generation, JobSpec
from imageforge.api.services.pipeline import Pipeline
from imageforge.api.services.retention import run_after_finish
from imageforge.graph.progress import ProgressTracker
from imageforge.traces import layout
from imageforge.traces.retention import RetentionPolicy
from imageforge.traces.schemas import RunSummary, SceneResult

__all__ = ["Job", "JobExecutor", "Publish", "StartJob", "start_row", "status_event"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Publish = Callable[[str, dict[str, Any]], None]
StartJob = Callable[[Session, str], Generation | None]


def _record_scene(session: Session, *, generation_id: str, result: SceneResult, trace_dir: Path) -> object:
    return crud.record_scene(session=session, generation_id=generation_id, result=result, trace_dir=trace_dir)


def start_row(session: Session, generation_id: str) -> Generation | None:
    return crud.start_generation(session=session, generation_id=generation_id)


def status_event(generation_id: str, status: str, progress: int, current_step: str) -> dict[str, Any]:
    return {
        "type": "status",
        "generation_id": generation_id,
        "status": status,
        "progress": progress,
        "current_step": current_step,
    }


@dataclass
class Job:
    """A job while it is claimed: its stop flag and the progress the database does not hold yet."""

    generation_id: str
    running: bool = False
    stop: bool = False
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    scene: int | None = None
    recorded: set[int] = field(default_factory=set)
    live: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> dict[str, Any]:
        return {"progress": int(self.tracker.progress), "current_step": self.tracker.step}


class JobExecutor:
    def __init__(
        self,
        *,
        engine: Engine,
        pipeline: Pipeline,
        trace_root: Path,
        metrics: ServiceMetrics,
        publish: Publish,
        on_change: Callable[[str], None] = lambda generation_id: None,
        retention: RetentionPolicy | None = None,
        start: StartJob = start_row,
        owns: Callable[[Job], bool] = lambda job: True,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.trace_root = trace_root
        self.metrics = metrics
        self.publish = publish  # called on the executing loop; must not block
        self.on_change = on_change  # told after every write to a generation (cache invalidation)
        self.retention = retention  # mode 'delete_on_success' removes a completed run's trace here
        self.start = start  # marks the row running; None when it is gone, finished or cancelled
        self.owns = owns  # False once another worker may have taken the job over: write nothing more
        self.checkpointer: BaseCheckpointSaver | None = None

    async def run(self, job: Job) -> None:
        """Run ``job`` to a final status; a bookkeeping failure fails the job, never the caller."""
        try:
            await self._run(job)
        except asyncio.CancelledError:
            raise  # shutting down: the job stays "running" and resumes on the next start or delivery
        except Exception:
            logger.exception("job %s: the runner failed", job.generation_id)
            await self.fail(job, "internal error in the job runner; see the server log")

    async def _run(self, job: Job) -> None:
        generation_id = job.generation_id
        row = await self.db(lambda s: self.start(s, generation_id), changes=generation_id)
        if row is None:  # cancelled or removed while it waited
            self.publish(generation_id, status_event(generation_id, "cancelled", 0, "cancelled"))
            return
        spec = JobSpec.model_validate(row.request)
        resume = row.runs > 1
        job.running = True
        job.tracker.progress = float(row.progress)
        job.live = {"progress": row.progress, "current_step": row.current_step, "scene": None}
        self.publish(generation_id, status_event(generation_id, "running", row.progress, row.current_step))
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
                raise
            except Exception as exc:
                logger.exception("job %s failed", generation_id)
                status, error = "failed", f"{type(exc).__name__}: {exc}"
            else:
                status = summary.status if summary.status in TERMINAL_STATUSES else "failed"
                error = summary.error
        await self.finish(job, summary, status, error)

    async def finish(self, job: Job, summary: RunSummary | None, status: str, error: str | None) -> None:
        generation_id = job.generation_id
        if not self.owns(job):
            logger.warning("job %s: lost its lease; leaving its outcome to the worker that took it over", generation_id)
            return
        trace_dir = layout.generation_dir(self.trace_root, generation_id)
        if summary is not None:
            missing = [s for s in summary.scenes if s.scene_number not in job.recorded]
            for scene in missing:
                await self.db(
                    partial(_record_scene, generation_id=generation_id, result=scene, trace_dir=trace_dir),
                    changes=generation_id,
                )
        step = {"completed": "done", "cancelled": "cancelled", "failed": "failed"}.get(status, status)
        row = await self.db(
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
        self.publish(generation_id, {**status_event(generation_id, status, progress, step), "error": error})
        if status in ("completed", "cancelled") and self.checkpointer is not None:
            try:
                await self.checkpointer.adelete_thread(generation_id)
            except Exception:  # the checkpoint is only a resume aid; keeping it is harmless
                logger.warning("job %s: could not delete its checkpoints", generation_id, exc_info=True)
        if self.retention is not None and self.retention.mode == "delete_on_success":
            await asyncio.to_thread(
                run_after_finish, self.trace_root, generation_id, status=status, policy=self.retention
            )

    async def fail(self, job: Job, error: str) -> None:
        try:
            await self.finish(job, None, "failed", error)
        except Exception:
            logger.exception("job %s: could not record the failure", job.generation_id)

    async def _on_event(self, job: Job, event: dict[str, Any]) -> None:
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
            if not self.owns(job):
                pass  # another worker took the job over: its own events are the ones stored
            elif kind == "plan_ready":
                plan = {"scenes": data.get("scenes", []), "markers": data.get("markers"), "source": data.get("source")}
                await self.db(
                    lambda s: crud.set_plan(
                        session=s, generation_id=generation_id, plan=plan, progress=progress, step=step
                    ),
                    changes=generation_id,
                )
            elif kind == "scene_done" and "result" in data:
                result = SceneResult.model_validate(data["result"])
                trace_dir = layout.generation_dir(self.trace_root, generation_id)
                await self.db(
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
        self.publish(
            generation_id,
            {**event, "generation_id": generation_id, "progress": progress, "current_step": step},
        )

    async def db(self, work: Callable[[Session], T], *, changes: str | None = None) -> T:
        """Run ``work`` in a worker thread; ``changes`` names the generation it writes to."""

        def run() -> T:
            with Session(self.engine) as session:
                try:
                    return work(session)
                finally:
                    if changes is not None:
                        self.on_change(changes)

        return await asyncio.to_thread(run)
