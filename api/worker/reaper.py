"""Re-queue the jobs whose worker died: a running job whose lease expired has no heartbeat.

It runs in the API processes and in every worker, so a lost job is noticed while anything
is alive; a claim key per (job, run) makes exactly one of them act on each loss. The job
goes back to ``queued`` with a new message (another worker resumes it from its checkpoint;
its finished scenes are not redone), or is failed once it has cost ``max_worker_losses``
workers, so a job that kills whatever runs it cannot take down the whole pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from celery import Celery
from redis import asyncio as aioredis
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import Generation
from imageforge.api.services.job_execution import status_event
from imageforge.api.services.redis_events import STATE_TTL_S, lease_key, losses_key, reaped_key
from imageforge.api.worker.celery_app import TASK_NAME

__all__ = ["Reaper", "requeue_or_fail"]

logger = logging.getLogger(__name__)

Outcome = Literal["requeued", "failed"]


def requeue_or_fail(session: Session, generation_id: str, runs: int, *, give_up: bool, error: str) -> Outcome | None:
    """A job whose worker died: back to ``queued``, or ``failed`` when it has cost too many
    workers; None when it moved on meanwhile (finished, cancelled, started again)."""
    row = session.get(Generation, generation_id, with_for_update=True)
    if row is None or row.status != "running" or row.runs != runs:
        session.rollback()
        return None
    if give_up:
        crud.finish_generation(
            session=session, generation_id=generation_id, status="failed", step="failed", error=error
        )
        return "failed"
    row.status = "queued"
    row.current_step = "re-queued: its worker stopped"
    session.add(row)
    session.commit()
    return "requeued"


def _running(engine: Engine) -> list[tuple[str, int]]:
    with Session(engine) as session:
        rows = session.exec(select(Generation).where(Generation.status == "running")).all()
        return [(row.id, row.runs) for row in rows]


class Reaper:
    def __init__(
        self,
        *,
        engine: Engine,
        redis: aioredis.Redis,
        celery: Celery,
        name: str,
        max_losses: int,
        publish: Callable[[str, dict[str, Any]], Awaitable[None]],
        on_change: Callable[[str], None] = lambda generation_id: None,
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.celery = celery
        self.name = name
        self.max_losses = max_losses
        self.publish = publish
        self.on_change = on_change

    async def run_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reap()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("the reaper failed this round", exc_info=True)

    async def reap(self) -> list[tuple[str, Outcome]]:
        """Act on every running job without a lease; returns what it did."""
        done: list[tuple[str, Outcome]] = []
        for generation_id, runs in await asyncio.to_thread(_running, self.engine):
            if await self.redis.exists(lease_key(generation_id)):
                continue
            # One reaper per lost run, however many processes notice it.
            if not await self.redis.set(reaped_key(generation_id, runs), self.name, nx=True, ex=STATE_TTL_S):
                continue
            outcome = await self._handle(generation_id, runs)
            if outcome is not None:
                done.append((generation_id, outcome))
        return done

    async def _handle(self, generation_id: str, runs: int) -> Outcome | None:
        losses = int(await self.redis.incr(losses_key(generation_id)))
        await self.redis.expire(losses_key(generation_id), STATE_TTL_S)
        error = (
            f"the worker running this job stopped (killed or crashed) {losses} times; "
            "it was failed so that it cannot take down another worker"
        )

        def decide() -> Outcome | None:
            with Session(self.engine) as session:
                try:
                    return requeue_or_fail(session, generation_id, runs, give_up=losses >= self.max_losses, error=error)
                finally:
                    self.on_change(generation_id)

        outcome = await asyncio.to_thread(decide)
        if outcome == "requeued":
            logger.warning("job %s: its worker stopped (%d of %d); re-queued", generation_id, losses, self.max_losses)
            await asyncio.to_thread(self.celery.send_task, TASK_NAME, args=[generation_id])
            await self.publish(generation_id, status_event(generation_id, "queued", 0, "re-queued: its worker stopped"))
        elif outcome == "failed":
            logger.error("job %s: %s", generation_id, error)
            await self.publish(generation_id, {**status_event(generation_id, "failed", 0, "failed"), "error": error})
        return outcome
