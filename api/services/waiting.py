"""Waiting for a job from inside a request: the synchronous endpoints' half of "every
generation is a job" (a smart image, /v1/images).

The request subscribes to the event hub for the job's terminal event and also reads the
job's status from the database, each read in a short session of its own, once per
``poll_s`` and after every event. The hub is the fast path (embedded runner or, in the
distributed mode, the Redis bridge feeding the same hub); the poll is the fallback that
makes a missed or dropped event cost at most ``poll_s``. No database session is held while
waiting, so any number of waiting requests cannot drain the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import TERMINAL_STATUSES
from imageforge.api.services.event_hub import EventHub

__all__ = ["WaitOutcome", "job_status", "wait_for_job"]

WaitOutcome = Literal["completed", "failed", "cancelled", "timeout", "disconnected"]


def job_status(engine: Engine, generation_id: str) -> str:
    """The job's stored status; "failed" when its row is gone (nothing will finish it)."""
    with Session(engine) as session:
        row = crud.get_generation(session=session, generation_id=generation_id, user_id=None)
        return row.status if row is not None else "failed"


async def wait_for_job(
    *,
    hub: EventHub,
    engine: Engine,
    generation_id: str,
    timeout_s: float,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
    poll_s: float = 1.0,
) -> WaitOutcome:
    """The job's terminal status, or "timeout" after ``timeout_s``, or "disconnected" when
    ``disconnected()`` says the client left. The caller decides what to do with a job it
    stopped waiting for (the synchronous endpoints cancel it)."""
    if timeout_s <= 0:
        raise ValueError(f"`timeout_s` must be positive, got {timeout_s!r}.")
    if poll_s <= 0:
        raise ValueError(f"`poll_s` must be positive, got {poll_s!r}.")
    queue = hub.subscribe(generation_id)  # before the first read, so no event falls between
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            current = await asyncio.to_thread(job_status, engine, generation_id)
            if current in TERMINAL_STATUSES:
                return current  # type: ignore[return-value]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "timeout"
            if disconnected is not None and await disconnected():
                return "disconnected"
            try:
                async with asyncio.timeout(min(poll_s, remaining)):
                    while (await queue.get()).get("status") not in TERMINAL_STATUSES:
                        pass
            except TimeoutError:
                pass
    finally:
        hub.unsubscribe(generation_id, queue)
