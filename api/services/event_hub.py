"""In-memory fan-out of progress events, per generation, to SSE and WebSocket subscribers.

Publishing never waits: each subscriber has a bounded queue, and one that falls too far
behind loses its oldest events rather than stalling the job that produces them. Everything
here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

__all__ = ["EventHub"]


class EventHub:
    def __init__(self, *, max_queued: int = 1000) -> None:
        if max_queued < 1:
            raise ValueError(f"`max_queued` must be at least 1, got {max_queued!r}.")
        self._max_queued = max_queued
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._sequence = itertools.count(1)

    def subscribe(self, generation_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._max_queued)
        self._subscribers.setdefault(generation_id, set()).add(queue)
        return queue

    def unsubscribe(self, generation_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(generation_id)
        if queues is None:
            return
        queues.discard(queue)
        if not queues:
            del self._subscribers[generation_id]

    def subscribers(self, generation_id: str) -> int:
        return len(self._subscribers.get(generation_id, ()))

    def publish(self, generation_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Send ``event`` (with a process-wide sequence number as ``seq``) to every subscriber."""
        message = {**event, "seq": next(self._sequence)}
        for queue in list(self._subscribers.get(generation_id, ())):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):  # single-threaded: cannot race
                    queue.get_nowait()
            queue.put_nowait(message)
        return message
