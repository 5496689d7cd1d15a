"""The FastAPI app factory. ``uvicorn imageforge.api.main:create_app --factory`` serves it.

The lifespan opens the database, the durable checkpointer and the job runner, builds the
default backends once (saying which ones serve each role), and re-queues the jobs a
previous process left unfinished. Errors are answered by the exception handlers registered
here: the app's usual ``{"detail": ...}`` shape, OpenAI's error shape on the /v1/images
routes, and seed 003's on the smart-image route.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from imageforge.api.core.checkpoints import open_checkpointer
from imageforge.api.core.config import Settings, get_settings
from imageforge.api.core.db import DatabaseProbe, autocommit_reads, create_db_engine, init_db
from imageforge.api.core.headers import SecurityHeadersMiddleware
from imageforge.api.core.heap import freeze_startup_heap
from imageforge.api.core.json_guard import encodable, reject_invalid_json_values
from imageforge.api.core.limits import BodyLimitMiddleware
from imageforge.api.core.logging import install_redaction
from imageforge.api.core.metrics import ServiceMetrics
from imageforge.api.crud import generation as generation_crud
from imageforge.api.crud import user as user_crud
from imageforge.api.deps import images_settings
from imageforge.api.models.character import SmartImageError, SmartImageErrorDetails
from imageforge.api.routes import (
    assistant,
    assistant_page,
    characters,
    docs,
    estimate,
    generate,
    generations,
    login,
    openai_images,
    presets,
    signin,
    storyboards,
    traces,
    users,
    utils,
    viewer,
)
from imageforge.api.services import openai_compat
from imageforge.api.services.assistant import open_assistant
from imageforge.api.services.backends import DefaultBackends
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.job_queue import JobQueue
from imageforge.api.services.jobs import JobRunner, QueueFullError
from imageforge.api.services.pipeline import Pipeline, make_pipeline
from imageforge.api.services.retention import sweep_periodically
from imageforge.api.services.smart_images import SmartImageFailure
from imageforge.api.services.status import StatusDocumentCache
from imageforge.api.services.uploads import UploadError, configure_decoding
from imageforge.api.services.user_cache import UserCache
from imageforge.tools.storage import private_dirs

__all__ = ["create_app"]

logger = logging.getLogger("imageforge.api")

#: Bodies of every route but the upload: a batch of 50 storyboards fits in well under this.
JSON_BODY_LIMIT = 2 * 1024 * 1024
#: Room for the form fields beside the image in a multipart upload.
FORM_OVERHEAD = 1024 * 1024

ROUTERS = (
    login,
    signin,
    users,
    generate,
    storyboards,
    generations,
    traces,
    estimate,
    utils,
    viewer,
    openai_images,
    characters,
    presets,
    assistant,
    assistant_page,
    docs,
)

#: The pages' scripts and styles, served as files so that no page needs inline code (strict CSP).
STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"

#: Handlers whose errors are answered in OpenAI's shape, and the one answered in seed 003's.
OPENAI_ENDPOINTS: frozenset[Callable[..., Any]] = frozenset(
    route.endpoint for route in openai_images.router.routes if isinstance(route, APIRoute)
)
SMART_IMAGE_ENDPOINT: Callable[..., Any] = characters.generate_smart_image


def _version() -> str:
    try:
        return version("imageforge")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


# Error handlers ------------------------------------------------------------------------------
def _endpoint(request: Request) -> Callable[..., Any] | None:
    """The handler that the request reached, or None (no route, or a method the route does not
    take: that 404 or 405 keeps the app's usual shape)."""
    route = request.scope.get("route")
    methods = getattr(route, "methods", None)
    if route is None or (methods is not None and request.scope.get("method") not in methods):
        return None
    return getattr(route, "endpoint", None)


def smart_image_error(
    status_code: int, error: str, details: SmartImageErrorDetails, detail: Any = None
) -> JSONResponse:
    """Seed 003's error body; a 422 also carries FastAPI's ``detail`` list naming the fields."""
    body = jsonable_encoder(SmartImageError(error=error, details=details, detail=detail))
    if detail is None:
        body.pop("detail", None)
    return JSONResponse(body, status_code=status_code)


def _invalid_parameters(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', '')}")
    return "Invalid Parameters: " + "; ".join(parts)


async def invalid_request(request: Request, exc: Exception) -> Response:
    """A request that fails validation: OpenAI's 400, seed 003's 422, or FastAPI's 422.

    The errors echo the caller's input, which may hold what strict JSON cannot encode (NaN, a
    lone surrogate in a form field): it is made printable first, so this answer never fails.
    """
    assert isinstance(exc, RequestValidationError)
    endpoint = _endpoint(request)
    errors = encodable(jsonable_encoder(exc.errors()))
    if endpoint in OPENAI_ENDPOINTS:
        return openai_compat.validation_error(errors).response()
    if endpoint is SMART_IMAGE_ENDPOINT:
        reasons = sorted({str(e.get("loc", ["body"])[-1]) for e in errors})
        details = SmartImageErrorDetails(failureReasons=[f"Invalid parameter: {r}" for r in reasons])
        return smart_image_error(422, _invalid_parameters(errors), details, errors)
    return JSONResponse({"detail": errors}, status_code=422)


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTPException (authentication, a body that does not parse, a 404 a handler raised)."""
    assert isinstance(exc, StarletteHTTPException)
    endpoint = _endpoint(request)
    if endpoint in OPENAI_ENDPOINTS:
        return openai_compat.http_error(exc).response()
    if endpoint is SMART_IMAGE_ENDPOINT and exc.status_code == 400:  # a body that does not parse; 401 keeps its shape
        return smart_image_error(400, f"Invalid Parameters: {exc.detail}", SmartImageErrorDetails())
    return await http_exception_handler(request, exc)


async def openai_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, openai_compat.OpenAIError)
    return exc.response()


async def smart_image_failed(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmartImageFailure)
    return smart_image_error(exc.status_code, exc.error, exc.details)


async def queue_full(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, QueueFullError)
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_s)})


async def upload_refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UploadError)
    return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)


def _unregister_user_cache(engine: Engine) -> None:
    """An embedded process serves its database alone: no API process caches its users any more,
    so ``imageforge users`` need not reach a broker."""
    with Session(engine) as session:
        if user_crud.unregister_user_cache(session=session):
            logger.info("removed this database's user cache registration (it was served in distributed mode)")


# The app -------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """The app for ``settings`` (default: the environment). ``pipeline`` replaces the storyboard
    graph, for tests of the service alone."""
    settings = settings if settings is not None else get_settings()
    settings.check_secrets()
    try:
        settings.check_execution()
    except ValueError as exc:  # one clear line, not a traceback
        sys.exit(f"error: {exc}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        distributed = bool(settings.broker_url)
        if settings.dev_mode:
            logger.warning(
                "DEV MODE: authentication is disabled and every request acts as %s. "
                "Never expose this server; unset IMAGEFORGE_DEV_MODE for real use.",
                user_crud.DEV_USER_EMAIL,
            )
        images_settings(app)  # a bad IMAGEFORGE_OPENAI_IMAGES__* value stops the start, not a request
        engine = create_db_engine(settings)
        await asyncio.to_thread(init_db, engine)
        app.state.dev_user_id = None
        if settings.dev_mode:
            with Session(engine) as session:
                app.state.dev_user_id = user_crud.get_or_create_dev_user(session=session).id
        private_dirs(settings.trace_root)  # owner-only where this process creates them
        private_dirs(settings.upload_dir)
        app.state.engine = engine
        app.state.reader = autocommit_reads(engine)  # the per-request lookups: one round trip each
        backends = DefaultBackends(settings)
        app.state.backends = backends
        if pipeline is None and not distributed:  # distributed: the workers load the models
            await asyncio.to_thread(backends.build)
        metrics = ServiceMetrics(slo_p95_s=settings.slo_p95_s)
        hub = EventHub()
        documents: StatusDocumentCache[Any] = StatusDocumentCache(max_entries=settings.status_cache_entries)
        runner: JobQueue
        if distributed:
            from imageforge.api.services.distributed import DistributedQueue  # celery and redis: only here

            runner = DistributedQueue(
                settings=settings, engine=engine, hub=hub, metrics=metrics, on_change=documents.invalidate
            )
        else:
            runner = JobRunner(
                engine=engine,
                pipeline=pipeline if pipeline is not None else make_pipeline(settings, backends, engine=engine),
                checkpointer=lambda: open_checkpointer(settings),
                trace_root=settings.trace_root,
                workers=settings.workers,
                queue_size=settings.queue_size,
                retry_after_s=settings.retry_after_s,
                hub=hub,
                metrics=metrics,
                on_change=documents.invalidate,
                retention=settings.trace_retention,
            )

        def counts() -> dict[str, int]:
            with Session(engine) as session:
                return generation_crud.count_by_status(session=session)

        metrics.bind_runner(
            depth=lambda: runner.depth, workers=lambda: runner.workers, busy=lambda: runner.busy, counts=counts
        )
        app.state.metrics = metrics
        app.state.runner = runner
        app.state.documents = documents
        app.state.users = None
        revocations = None
        if distributed and settings.user_cache_entries and not settings.dev_mode:
            from imageforge.api.services.revocations import start_listening

            users = UserCache(max_entries=settings.user_cache_entries)
            revocations = await start_listening(engine=engine, broker_url=settings.broker_url, cache=users)  # type: ignore[arg-type]
            app.state.users = users
        elif not distributed:
            await asyncio.to_thread(_unregister_user_cache, engine)
        recovered = await runner.start()
        if recovered:
            logger.info("re-queued %d unfinished generation(s) from a previous run", recovered)
        logger.info(
            "ImageForge %s: %s, queue of %d, database %s, traces under %s",
            _version(),
            "jobs run by `imageforge worker` processes (Celery)" if distributed else f"{settings.workers} worker(s)",
            settings.queue_size,
            "PostgreSQL" if settings.is_postgres else "SQLite",
            settings.trace_root,
        )
        assistant_scope = AsyncExitStack()  # the assistant's checkpointer, on this (the API's) loop
        app.state.assistant = await assistant_scope.enter_async_context(open_assistant(settings))
        app.state.database = database = DatabaseProbe(app.state.reader)  # what /health reports
        await database.start()
        freeze_startup_heap()
        retention = settings.trace_retention
        sweeper = None
        if retention.max_age is not None or retention.upload_max_age is not None:
            sweeper = asyncio.create_task(
                sweep_periodically(
                    engine=engine, trace_root=settings.trace_root, upload_dir=settings.upload_dir, policy=retention
                ),
                name="retention-sweep",
            )
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeper
            await database.stop()
            await runner.stop()
            if revocations is not None:
                await revocations.stop()
            await assistant_scope.aclose()
        engine.dispose()

    app = FastAPI(
        title="ImageForge",
        version=_version(),
        summary="Agentic storyboard generation: critique loop, best-of-N images, weighted scoring, traces.",
        lifespan=lifespan,
        docs_url=None,  # routes/docs.py serves them under the pages' CSP
        redoc_url=None,
        dependencies=[Depends(reject_invalid_json_values)],
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
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer carries the headers
    install_redaction()  # no token or URL credential in a log line, however uvicorn was started
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(openai_compat.OpenAIError, openai_error)
    app.add_exception_handler(SmartImageFailure, smart_image_failed)
    app.add_exception_handler(QueueFullError, queue_full)
    app.add_exception_handler(UploadError, upload_refused)
    configure_decoding(concurrency=settings.upload_decode_concurrency, max_side=settings.upload_max_side)
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
