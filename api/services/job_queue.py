"""The one job interface the routes see, whichever way jobs run.

Two implementations: ``jobs.JobRunner`` runs jobs inside the API process (the default, one
machine), ``distributed.DistributedQueue`` hands them to Celery workers through Redis
(``IMAGEFORGE_BROKER_URL``). Routes and services depend on this Protocol only, so a
submission, a cancel or an event stream reads the same in both modes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from imageforge.api.services.event_hub import EventHub

__all__ = ["CancelOutcome", "JobQueue", "QueueFullError", "WorkerInfo"]

CancelOutcome = Literal["cancelled", "cancelling", "finished", "unknown"]
WorkerInfo = dict[str, Any]
"""A live worker as /health lists it: name, device, concurrency, running jobs, loaded models."""


class QueueFullError(RuntimeError):
    """No room in the queue; the client should retry after ``retry_after_s``."""

    def __init__(self, queue_size: int, retry_after_s: int) -> None:
        super().__init__(f"the job queue is full ({queue_size} waiting); retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class JobQueue(Protocol):
    """Admit, queue, cancel and observe jobs; the jobs themselves are rows in the database."""

    hub: EventHub
    queue_size: int

    @property
    def workers(self) -> int:
        """Jobs that can run at the same time (the embedded pool, or the live workers' slots)."""
        ...

    @property
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        ...

    @property
    def busy(self) -> int:
        """Jobs running now."""
        ...

    @property
    def alive_workers(self) -> int:
        """Job slots that could take work now (0 answers /health with 503)."""
        ...

    def worker_list(self) -> list[WorkerInfo]:
        """The worker processes alive, for /health."""
        ...

    def live(self, generation_id: str) -> dict[str, Any] | None:
        """A running job's progress beyond what is stored: progress, current_step, scene."""
        ...

    async def start(self) -> int:
        """Start serving; returns how many unfinished jobs of a previous run were re-queued."""
        ...

    async def stop(self) -> None: ...

    def reserve(self) -> None:
        """Claim a queue slot before storing a job; ``QueueFullError`` when there is none."""
        ...

    def release(self) -> None:
        """Give back a reserved slot whose job was not stored."""
        ...

    async def enqueue(self, generation_id: str, *, user_id: int | None = None) -> None:
        """Queue a stored job on a slot from :meth:`reserve`; ``user_id`` (its owner) decides its
        turn where the queue is fair between users."""
        ...

    async def cancel(self, generation_id: str) -> CancelOutcome:
        """A queued job at once, a running one at its next node boundary."""
        ...

    async def catch_up(self, generation_id: str) -> None:
        """Load what a late subscriber needs to see first (the latest progress of a job that
        may run elsewhere)."""
        ...
