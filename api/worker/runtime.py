"""One worker process: its device, its models, its event loop, its leases and its reaper.

Celery's thread pool hands each job to a thread; the thread only waits while the job runs
on the worker's single event loop, so the ``concurrency`` jobs of a worker share one loop,
one set of loaded models and one checkpointer, and only their device calls queue for the
device (DESIGN, "Execution"). Models are built once, before the worker takes its first job.

Around each job: a lease in Redis (no lease, no run), renewed by a heartbeat thread that
also publishes the worker's presence (``/health`` lists it) and turns a cancel key into the
job's stop flag. The reaper, in every worker, re-queues a running job whose lease expired
(its worker died) so another worker resumes it from its checkpoint in seconds; a job that
lost its worker ``max_worker_losses`` times is failed instead of taking down another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis
from celery import Celery
from redis import asyncio as aioredis
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.checkpoints import open_checkpointer
from imageforge.api.core.config import Settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.heap import freeze_startup_heap
from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import Generation, JobSpec
from imageforge.api.services.backends import DefaultBackends
from imageforge.api.services.job_execution import Job, JobExecutor
from imageforge.api.services.pipeline import EventHandler, Pipeline, make_pipeline
from imageforge.api.services.redis_events import (
    EventPublisher,
    async_client,
    cancel_key,
    worker_key,
)
from imageforge.api.worker import lease
from imageforge.api.worker.celery_app import TASK_NAME
from imageforge.api.worker.reaper import Reaper
from imageforge.tools.storage import private_dirs

__all__ = ["WorkerRuntime", "default_worker_name", "locked_start", "register_task"]

logger = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"imageforge-{os.getpid()}@{socket.gethostname()}"


def locked_start(session: Session, generation_id: str) -> Generation | None:
    """``start_generation`` under a row lock, so a cancel or the reaper in another process
    cannot interleave between its read and its write."""
    session.get(Generation, generation_id, with_for_update=True)
    return crud.start_generation(session=session, generation_id=generation_id)


def _on_device(pipeline: Pipeline, device: str) -> Pipeline:
    """Run every job on this worker's device, whatever device the submitting API was configured with."""

    async def run(
        generation_id: str,
        spec: JobSpec,
        *,
        checkpointer: Any,
        resume: bool,
        on_event: EventHandler,
        should_stop: Any,
    ) -> Any:
        spec = spec.model_copy(update={"backends": spec.backends.model_copy(update={"device": device})})
        return await pipeline(
            generation_id, spec, checkpointer=checkpointer, resume=resume, on_event=on_event, should_stop=should_stop
        )

    return run


@dataclass
class _Claim:
    job: Job
    token: str
    lost: bool = False


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        celery: Celery,
        *,
        name: str,
        device: str,
        concurrency: int,
        pipeline: Pipeline | None = None,
    ) -> None:
        assert settings.broker_url, "a worker needs IMAGEFORGE_BROKER_URL"
        # `workers` is this process's job slots (sizes its checkpoint connection pool, as for the embedded runner).
        self.settings = settings.model_copy(update={"device": device, "workers": concurrency})
        self.celery = celery
        self.name = name
        self.device = device
        self.concurrency = concurrency
        self._pipeline = pipeline
        self.backends = DefaultBackends(self.settings)
        self.claims: dict[str, _Claim] = {}
        self.started_at = time.time()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self.engine: Engine | None = None
        self.executor: JobExecutor | None = None
        self.publisher: EventPublisher | None = None
        self.redis: aioredis.Redis | None = None

    # Lifecycle (the CLI's thread) ------------------------------------------------------------
    def start(self) -> None:
        """Build the models, open the database and the checkpointer, start the loop, the
        heartbeat and the reaper; raise if any of it fails (the worker then does not start)."""
        self.engine = create_db_engine(self.settings)
        init_db(self.engine)
        if self._pipeline is None:
            if self.backends.build() is None:
                raise RuntimeError(f"the backends failed to build: {self.backends.error}")
            self._pipeline = make_pipeline(self.settings, self.backends, engine=self.engine)
        self.executor = JobExecutor(
            engine=self.engine,
            pipeline=_on_device(self._pipeline, self.device),
            trace_root=self.settings.trace_root,
            metrics=ServiceMetrics(slo_p95_s=self.settings.slo_p95_s),
            publish=self._publish,
            retention=self.settings.trace_retention,
            start=locked_start,
            owns=self._owns,
        )
        private_dirs(self.settings.trace_root)
        loop_thread = threading.Thread(target=self._loop_main, name="imageforge-worker-loop", daemon=True)
        loop_thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        beat = threading.Thread(target=self._heartbeat_main, name="imageforge-heartbeat", daemon=True)
        beat.start()
        self._threads = [loop_thread, beat]
        freeze_startup_heap()  # the models and libraries live as long as the worker

    def stop(self) -> None:
        self._halt.set()
        if self.loop is not None and self._stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopping.set)
        for thread in self._threads:
            thread.join(timeout=30)
        if self.engine is not None:
            self.engine.dispose()

    def _loop_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            logger.exception("the worker's event loop stopped")
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        assert self.executor is not None and self.engine is not None and self.settings.broker_url
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.redis = async_client(self.settings.broker_url)
        self.publisher = EventPublisher(self.redis)
        self.publisher.start()
        try:
            async with open_checkpointer(self.settings) as checkpointer:
                self.executor.checkpointer = checkpointer
                reaper = Reaper(
                    engine=self.engine,
                    redis=self.redis,
                    celery=self.celery,
                    name=self.name,
                    max_losses=self.settings.max_worker_losses,
                    publish=self._publish_async,
                )
                reaping = asyncio.create_task(
                    reaper.run_forever(self.settings.heartbeat_interval_s), name="imageforge-reaper"
                )
                self._ready.set()
                await self._stopping.wait()
                reaping.cancel()
                await asyncio.gather(reaping, return_exceptions=True)
        finally:
            await self.publisher.stop()
            await self.redis.aclose()

    # Jobs (a Celery pool thread, then the loop) ----------------------------------------------
    def execute(self, generation_id: str) -> None:
        """The Celery task's body: run the job on the worker's loop and wait for it."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(self._execute(generation_id), self.loop).result()

    async def _execute(self, generation_id: str) -> None:
        assert self.redis is not None and self.executor is not None and self.publisher is not None
        token = f"{self.name}:{uuid.uuid4().hex}"
        if not await lease.acquire(self.redis, generation_id, token, self.settings.lease_ttl_s):
            logger.info("job %s: another worker holds its lease; this delivery is dropped", generation_id)
            return
        claim = _Claim(Job(generation_id), token)
        self.claims[generation_id] = claim
        try:
            if await self.redis.exists(cancel_key(generation_id)):
                claim.job.stop = True
            await self.executor.run(claim.job)
            await self.publisher.drain()  # subscribers see the final status before the message is acknowledged
        finally:
            self.claims.pop(generation_id, None)
            if not claim.lost:
                await lease.release(self.redis, generation_id, token)

    def _owns(self, job: Job) -> bool:
        claim = self.claims.get(job.generation_id)
        return claim is not None and not claim.lost

    def _publish(self, generation_id: str, event: dict[str, Any]) -> None:
        assert self.publisher is not None
        self.publisher.publish(generation_id, {**event, "worker": self.name})

    async def _publish_async(self, generation_id: str, event: dict[str, Any]) -> None:
        self._publish(generation_id, event)

    # Heartbeat (its own thread) --------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """This worker as /health lists it."""
        from imageforge.tools.model_cache import model_cache

        services = self.backends.services
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": self.device,
            "concurrency": self.concurrency,
            "running": len(self.claims),
            "jobs": sorted(self.claims),
            "started_at": self.started_at,
            "backends": services.describe() if services is not None else None,
            "loaded_models": [asdict(model) for model in model_cache.loaded()],
        }

    def _heartbeat_main(self) -> None:
        assert self.settings.broker_url
        client = redis.Redis.from_url(self.settings.broker_url)
        ttl_s = self.settings.lease_ttl_s
        try:
            while True:
                try:
                    self._beat(client, ttl_s)
                except redis.RedisError:
                    logger.warning("heartbeat: Redis unreachable", exc_info=True)
                if self._halt.wait(self.settings.heartbeat_interval_s):
                    break
            client.delete(worker_key(self.name))
        except redis.RedisError:
            pass
        finally:
            client.close()

    def _beat(self, client: redis.Redis, ttl_s: float) -> None:
        claims = list(self.claims.items())
        for generation_id, claim in claims:
            if not claim.lost and not lease.renew(client, generation_id, claim.token, ttl_s):
                logger.error("job %s: its lease expired and may run elsewhere; stopping it here", generation_id)
                claim.lost = True
                claim.job.stop = True
        if claims:
            flags = client.mget([cancel_key(generation_id) for generation_id, _ in claims])
            for (_, claim), flag in zip(claims, flags, strict=True):
                if flag:
                    claim.job.stop = True
        client.set(worker_key(self.name), json.dumps(self.describe(), default=str), px=int(ttl_s * 1000))


def register_task(celery: Celery, runtime: WorkerRuntime) -> None:
    """The one task: run a stored generation. Acknowledged late and rejected on worker loss
    (celery_app explains why); it never raises, a job's failure is recorded on the job."""

    @celery.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_generation(generation_id: str) -> None:
        runtime.execute(generation_id)
