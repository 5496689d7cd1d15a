"""The FastAPI app factory. ``uvicorn api.main:create_app --factory`` serves it.

The lifespan opens the database, the durable checkpointer and the job runner, builds the
default backends once (saying which ones serve each role), and re-queues the jobs a
previous process left unfinished.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from imageforge.api import crud
from imageforge.api.assistant import open_assistant
from imageforge.api.caches import GenerationCache, UserCache
from imageforge.api.checkpoints import open_checkpointer
from imageforge.api.db import create_db_engine, init_db
from imageforge.api.hub import EventHub
from imageforge.api.jobs import JobRunner, QueueFullError
from imageforge.api.limits import BodyLimitMiddleware
from imageforge.api.metrics import ServiceMetrics
from imageforge.api.pipeline import Pipeline, make_pipeline
from imageforge.api.routes import assistant as assistant_routes
from imageforge.api.routes import characters as character_routes
from imageforge.api.routes import (
    estimate,
    generate,
    generations,
    login,
    openai_images,
    storyboards,
    traces,
    utils,
    viewer,
)
from imageforge.api.routes import presets as preset_routes
from imageforge.api.settings import Settings, get_settings
from imageforge.api.uploads import UploadError

__all__ = ["create_app"]

logger = logging.getLogger("imageforge.api")

#: Bodies of every route but the upload: a batch of 50 storyboards fits in well under this.
JSON_BODY_LIMIT = 2 * 1024 * 1024
#: Room for the form fields beside the image in a multipart upload.
FORM_OVERHEAD = 1024 * 1024


def _version() -> str:
    try:
        return version("imageforge")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _build_default_services(settings: Settings) -> Any:
    from imageforge.graph.services import build_services

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return build_services(settings.default_backends(), api_key=api_key)


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """The app for ``settings`` (default: the environment). ``pipeline`` replaces the storyboard
    graph, for tests of the service alone."""
    settings = settings if settings is not None else get_settings()
    settings.check_secrets()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Jobs run in this process beside the API. A shorter GIL switch interval (default
        # 5 ms) lets a status request in while a worker thread runs Python code, trading a
        # little job throughput for request latency.
        sys.setswitchinterval(settings.gil_switch_interval_s)
        if settings.dev_mode:
            logger.warning(
                "DEV MODE: authentication is disabled and every request acts as %s. "
                "Never expose this server; unset IMAGEFORGE_DEV_MODE for real use.",
                crud.DEV_USER_EMAIL,
            )
        engine = create_db_engine(settings)
        await asyncio.to_thread(init_db, engine)
        app.state.dev_user_id = None
        if settings.dev_mode:
            with Session(engine) as session:
                app.state.dev_user_id = crud.get_or_create_dev_user(session=session).id
        settings.trace_root.mkdir(parents=True, exist_ok=True)
        settings.upload_dir.mkdir(parents=True, exist_ok=True)
        app.state.engine = engine
        app.state.services = None
        app.state.services_error = None
        if pipeline is None:
            try:
                services = await asyncio.to_thread(_build_default_services, settings)
            except Exception as exc:  # the server still starts; /health says why it is degraded
                logger.exception("the default backends failed to build")
                app.state.services_error = f"{type(exc).__name__}: {exc}"
            else:
                app.state.services = services
                for note in services.notes:
                    logger.info("backend: %s", note)
        metrics = ServiceMetrics(slo_p95_s=settings.slo_p95_s)
        hub = EventHub()
        documents: GenerationCache[Any] = GenerationCache(max_entries=settings.status_cache_entries)
        runner = JobRunner(
            engine=engine,
            pipeline=pipeline if pipeline is not None else make_pipeline(settings),
            checkpointer=lambda: open_checkpointer(settings),
            trace_root=settings.trace_root,
            workers=settings.workers,
            queue_size=settings.queue_size,
            retry_after_s=settings.retry_after_s,
            hub=hub,
            metrics=metrics,
            on_change=documents.invalidate,
        )

        def counts() -> dict[str, int]:
            with Session(engine) as session:
                return crud.count_by_status(session=session)

        metrics.bind_runner(
            depth=lambda: runner.depth, workers=lambda: runner.workers, busy=lambda: runner.busy, counts=counts
        )
        app.state.metrics = metrics
        app.state.runner = runner
        app.state.documents = documents
        app.state.user_cache = UserCache(ttl_s=settings.user_cache_ttl_s)
        recovered = await runner.start()
        if recovered:
            logger.info("re-queued %d unfinished generation(s) from a previous run", recovered)
        logger.info(
            "ImageForge %s: %d worker(s), queue of %d, database %s, traces under %s",
            _version(),
            settings.workers,
            settings.queue_size,
            "PostgreSQL" if settings.is_postgres else "SQLite",
            settings.trace_root,
        )
        assistant_scope = AsyncExitStack()  # the assistant's checkpointer, on this (the API's) loop
        app.state.assistant = await assistant_scope.enter_async_context(open_assistant(settings))
        try:
            yield
        finally:
            await runner.stop()
            await assistant_scope.aclose()
        engine.dispose()

    app = FastAPI(
        title="ImageForge",
        version=_version(),
        summary="Agentic storyboard generation: critique loop, best-of-N images, weighted scoring, traces.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    upload_limit = settings.max_upload_bytes + FORM_OVERHEAD
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda path: (
            upload_limit
            if path.endswith(("/generate-with-image", "/v1/images/edits", "/references"))
            else JSON_BODY_LIMIT
        ),
    )

    @app.exception_handler(QueueFullError)
    async def queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(UploadError)
    async def upload_refused(_: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)

    for module in (
        login,
        generate,
        storyboards,
        generations,
        traces,
        estimate,
        utils,
        viewer,
        openai_images,
        character_routes,
        preset_routes,
        assistant_routes,
    ):
        app.include_router(module.router)
    return app
