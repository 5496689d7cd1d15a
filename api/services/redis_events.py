"""Progress events and cancel signals between processes, through Redis.

A worker publishes every event of a job on the job's channel and keeps the job's latest
progress in a key (so an API process that starts, or a subscriber that arrives, after the
job began still sees where it is). Each API process runs one ``EventBridge``: a single
pattern subscription for all jobs that feeds the process's in-memory ``EventHub``, so 200
open streams cost one Redis connection, not 200, and no database connection at all.

The key names live here because both sides use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache
from redis import asyncio as aioredis
from redis.asyncio.client import PubSub

from imageforge.api.models.generation import TERMINAL_STATUSES
from imageforge.api.services.event_hub import EventHub

__all__ = [
    "EVENTS_PATTERN",
    "EventBridge",
    "EventPublisher",
    "Subscription",
    "async_client",
    "cancel_key",
    "events_channel",
    "lease_key",
    "live_from_event",
    "losses_key",
    "publish_event",
    "reaped_key",
    "state_key",
    "worker_key",
]

logger = logging.getLogger(__name__)

PREFIX = "imageforge:"
EVENTS_PATTERN = PREFIX + "events:*"
WORKERS_PATTERN = PREFIX + "worker:*"
#: How long the latest state and a cancel request outlive the job's last event.
STATE_TTL_S = 24 * 3600
#: Events a worker publishes after writing to the generation's row: a cached status document
#: of that generation is stale from then on.
STORED_KINDS = frozenset({"status", "plan_ready", "scene_done"})


def async_client(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing: 200 streams that
    open at once queue for a few milliseconds rather than erroring with "Too many connections"."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=20)
    return aioredis.Redis(connection_pool=pool)


def events_channel(generation_id: str) -> str:
    return f"{PREFIX}events:{generation_id}"


def state_key(generation_id: str) -> str:
    return f"{PREFIX}state:{generation_id}"


def cancel_key(generation_id: str) -> str:
    return f"{PREFIX}cancel:{generation_id}"


def lease_key(generation_id: str) -> str:
    return f"{PREFIX}lease:{generation_id}"


def losses_key(generation_id: str) -> str:
    return f"{PREFIX}losses:{generation_id}"


def reaped_key(generation_id: str, runs: int) -> str:
    return f"{PREFIX}reaped:{generation_id}:{runs}"


def worker_key(name: str) -> str:
    return f"{PREFIX}worker:{name}"


def live_from_event(previous: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The live state (what the status document shows beyond the database) after ``event``."""
    live = dict(previous or {})
    if "progress" in event:
        live["progress"] = int(event["progress"])
    if "current_step" in event:
        live["current_step"] = event["current_step"]
    if event.get("scene") is not None and event.get("type") in ("scene_started", "attempt_started"):
        live["scene"] = int(event["scene"])
    if event.get("type") == "status":
        live["status"] = event.get("status")
    return live


class Subscription:
    """One pub/sub connection kept open by a task: ``_subscribe`` on every (re)connection, then
    ``_read`` until the connection fails; ``_lost`` is told, and it reconnects with a backoff
    (0.2 s, doubling to 5 s). ``start`` returns once the first subscription is in place."""

    name = "imageforge-subscription"

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=10)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"{self.name} could not subscribe on the broker within 10 s") from None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe(self, pubsub: PubSub) -> None:
        raise NotImplementedError

    async def _read(self, pubsub: PubSub) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        """The connection failed: what it would have delivered until the next one is lost."""

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await self._subscribe(pubsub)
                self._subscribed.set()
                backoff = 0.2
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: reconnect
                self._lost()
                logger.warning("%s: the Redis subscription failed; reconnecting", self.name, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


class EventBridge(Subscription):
    """Redis pub/sub to this process's hub, plus the live progress of jobs running elsewhere.
    Events published while it reconnects are lost; the state keys cover the gap."""

    name = "imageforge-event-bridge"

    def __init__(
        self,
        redis: aioredis.Redis,
        hub: EventHub,
        *,
        on_change: Callable[[str], None] = lambda generation_id: None,
        max_live: int = 10_000,
    ) -> None:
        super().__init__(redis)
        self.hub = hub
        self.on_change = on_change  # a worker wrote to the generation before it published
        self.live: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=max_live)

    async def catch_up(self, generation_id: str) -> None:
        """Load a job's latest state from its key, for a subscriber that arrives late."""
        if generation_id in self.live:
            return
        raw = await self.redis.get(state_key(generation_id))
        if raw:
            state = json.loads(raw)
            if state.get("status") == "running" and generation_id not in self.live:
                self.live[generation_id] = state

    def deliver(self, generation_id: str, event: dict[str, Any]) -> None:
        if event.get("type") == "status" and (
            event.get("status") in TERMINAL_STATUSES or event.get("status") == "queued"
        ):
            self.live.pop(generation_id, None)  # nothing runs: the stored document is the whole truth
        else:
            self.live[generation_id] = live_from_event(self.live.get(generation_id), event)
        if event.get("type") in STORED_KINDS:
            self.on_change(generation_id)
        self.hub.publish(generation_id, event)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await pubsub.psubscribe(EVENTS_PATTERN)

    async def _read(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "pmessage":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            generation_id = channel.rsplit(":", 1)[-1]
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                logger.warning("ignored a malformed event on %s", channel)
                continue
            self.deliver(generation_id, event)


async def publish_event(
    redis: aioredis.Redis, generation_id: str, event: dict[str, Any], state: dict[str, Any]
) -> None:
    """Publish one event and store ``state`` (the live state after it) for late subscribers."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(state_key(generation_id), json.dumps(state), ex=STATE_TTL_S)
        pipe.publish(events_channel(generation_id), json.dumps(event, default=str))
        await pipe.execute()


class EventPublisher:
    """A worker's outgoing events, sent in order by one task: ``publish`` never waits, so the
    job that emits an event is never slowed by Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._state: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._send(), name="imageforge-event-publisher")

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def publish(self, generation_id: str, event: dict[str, Any]) -> None:
        self._queue.put_nowait((generation_id, event))

    async def drain(self) -> None:
        """Wait until every event published so far has reached Redis (before a job is acknowledged)."""
        await self._queue.join()

    async def _send(self) -> None:
        while True:
            generation_id, event = await self._queue.get()
            try:
                state = live_from_event(self._state.get(generation_id), event)
                if event.get("type") == "status" and event.get("status") in TERMINAL_STATUSES:
                    self._state.pop(generation_id, None)
                else:
                    self._state[generation_id] = state
                await publish_event(self.redis, generation_id, event, state)
            except Exception:  # a lost progress event must not stop the job; the database has the truth
                logger.warning("could not publish an event of job %s", generation_id, exc_info=True)
            finally:
                self._queue.task_done()
