"""A user's generations: history, status document, live events, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import (
    APIRouter,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from sse_starlette import EventSourceResponse
from starlette.requests import HTTPConnection

from imageforge.api.crud import generation as crud
from imageforge.api.deps import (
    CurrentUser,
    RunnerDep,
    SessionDep,
    StreamUser,
    TokenDep,
    authenticate,
    websocket_token,
)
from imageforge.api.models.generation import (
    TERMINAL_STATUSES,
    CancelPublic,
    Generation,
    GenerationsPublic,
    GenerationStatus,
    GenerationStatusDocument,
)
from imageforge.api.routes import Responses
from imageforge.api.services.job_queue import JobQueue
from imageforge.api.services.status import apply_live, owned_document, to_public

router = APIRouter(prefix="/api/generations", tags=["generations"])

#: Seconds a stream may stay quiet before it re-reads the job's state from the database.
QUIET_RECHECK_S = 30.0

GenerationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_NOT_FOUND: Responses = {404: {"description": "No such generation for this user."}}


def owned_generation(session: Session, generation_id: str, user_id: int) -> Generation:
    """The user's generation, or 404 (another user's generation is reported the same way)."""
    generation = crud.get_generation(session=session, generation_id=generation_id, user_id=user_id)
    if generation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {generation_id!r} not found.")
    return generation


def _owned_document(app: Any, generation_id: str, user_id: int, base_url: str) -> GenerationStatusDocument:
    """The user's status document with live progress, or 404 (blocking)."""
    return owned_document(
        engine=app.state.reader,
        documents=app.state.documents,
        live=app.state.runner.live,
        generation_id=generation_id,
        user_id=user_id,
        base_url=base_url,
    )


@router.get("", response_model=GenerationsPublic)
def list_generations(
    session: SessionDep,
    user: CurrentUser,
    runner: RunnerDep,
    request: Request,
    status_filter: Annotated[GenerationStatus | None, Query(alias="status")] = None,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> GenerationsPublic:
    """The caller's generations, newest first."""
    rows, count = crud.list_generations(session=session, user_id=user.id, status=status_filter, skip=skip, limit=limit)  # type: ignore[arg-type]
    base = str(request.base_url)
    return GenerationsPublic(data=[to_public(row, base, runner.live(row.id)) for row in rows], count=count)


@router.get("/{generation_id}", response_model=GenerationStatusDocument, responses=_NOT_FOUND)
async def get_generation(generation_id: GenerationId, token: TokenDep, request: Request) -> Response:
    """Seed 004's status document: status, progress, current step and the storyboard plan.

    Clients poll this, so it is the hot path: the caller is checked on every request, so that a
    revoked token stops at once (one indexed query; from memory in a distributed API process,
    see ``UserCache``), and the document usually comes from memory (cached until the job
    runner changes the generation, live progress added); otherwise a trip to the thread pool
    loads and caches it.
    """
    app = request.app
    base_url = str(request.base_url)
    user_id = (await authenticate(app, token)).id  # every request: revocation bites at once
    cached = app.state.documents.peek(generation_id, base_url)
    if cached is None:

        def load() -> GenerationStatusDocument:
            return _owned_document(app, generation_id, user_id, base_url)  # type: ignore[arg-type]

        document = await run_in_threadpool(load)
    else:
        owner, stored = cached
        if owner != user_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {generation_id!r} not found.")
        document = apply_live(stored, app.state.runner.live(generation_id))
    return Response(document.model_dump_json().encode(), media_type="application/json")


@router.post("/{generation_id}/cancel", response_model=CancelPublic, responses=_NOT_FOUND)
async def cancel_generation(
    generation_id: GenerationId, session: SessionDep, user: CurrentUser, runner: RunnerDep
) -> CancelPublic:
    """Cancel this job only. A queued job is cancelled at once; a running one stops at its next
    node boundary and keeps the scenes it finished. Cancelling again changes nothing."""
    generation = await run_in_threadpool(owned_generation, session, generation_id, user.id)  # type: ignore[arg-type]
    if generation.status in TERMINAL_STATUSES:
        return CancelPublic(
            generation_id=generation_id,
            status=generation.status,
            cancel_requested=generation.cancel_requested,
            message=f"already {generation.status}",
        )
    outcome = await runner.cancel(generation_id)
    messages = {
        "cancelled": "cancelled before it started",
        "cancelling": "stopping at the next step; finished scenes are kept",
        "finished": "it finished before the cancel arrived",
        "unknown": "not found",
    }
    session.expire_all()
    refreshed = await run_in_threadpool(owned_generation, session, generation_id, user.id)  # type: ignore[arg-type]
    return CancelPublic(
        generation_id=generation_id,
        status=refreshed.status,
        cancel_requested=refreshed.cancel_requested,
        message=messages[outcome],
    )


def _http_base_url(connection: HTTPConnection) -> str:
    """Image URLs are plain HTTP even when the status document travels over a WebSocket."""
    base = str(connection.base_url)
    return "http" + base[2:] if base.startswith("ws") else base


async def _event_stream(
    connection: HTTPConnection, runner: JobQueue, generation_id: str, user_id: int
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The current state first, then live events until the job reaches a final status.

    No database session is held while the stream is open: the state is read with a short
    one, then events come from memory. Should the final event be lost on its way from a
    worker (Redis reconnecting), a quiet stream re-reads the state now and then and ends
    when the job has.
    """
    base_url = _http_base_url(connection)
    hub = runner.hub
    queue = hub.subscribe(generation_id)
    try:

        def snapshot() -> GenerationStatusDocument:
            return _owned_document(connection.app, generation_id, user_id, base_url)

        await runner.catch_up(generation_id)
        document = await run_in_threadpool(snapshot)
        yield "state", document.model_dump(mode="json")
        if document.status in TERMINAL_STATUSES:
            return
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=QUIET_RECHECK_S)
            except TimeoutError:
                document = await run_in_threadpool(snapshot)
                if document.status not in TERMINAL_STATUSES:
                    continue
                event = {
                    "type": "status",
                    "generation_id": generation_id,
                    "status": document.status,
                    "progress": document.progress,
                    "current_step": document.current_step,
                    "error": document.error,
                }
            yield str(event.get("type", "event")), event
            if event.get("type") == "status" and event.get("status") in TERMINAL_STATUSES:
                return
    finally:
        hub.unsubscribe(generation_id, queue)


@router.get(
    "/{generation_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent progress events."},
        **_NOT_FOUND,
    },
)
async def generation_events(
    generation_id: GenerationId, user: StreamUser, runner: RunnerDep, request: Request
) -> EventSourceResponse:
    """Server-sent events: a ``state`` event with the status document, then the pipeline's
    progress events and ``status`` events, ending after the final status."""

    # The ownership check reads the status document (cached between changes, else one short
    # session, closed before the stream opens): a 404 here, before the stream starts.
    cached = request.app.state.documents.peek(generation_id, _http_base_url(request))
    if cached is None or cached[0] != user.id:
        await run_in_threadpool(_owned_document, request.app, generation_id, user.id, _http_base_url(request))  # type: ignore[arg-type]

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for kind, payload in _event_stream(request, runner, generation_id, user.id):  # type: ignore[arg-type]
            yield {"event": kind, "data": json.dumps(payload), "id": str(payload.get("seq", 0))}

    return EventSourceResponse(stream(), ping=15)


@router.websocket("/{generation_id}/ws")
async def generation_websocket(websocket: WebSocket, generation_id: str) -> None:
    """The same events as /events, as JSON messages ``{"event": ..., "data": ...}``.
    Authenticate with ``?token=`` or an ``Authorization: Bearer`` header."""
    app = websocket.app
    token = websocket_token(websocket)

    def authorize(user_id: int) -> None:
        with Session(app.state.reader) as session:
            owned_generation(session, generation_id, user_id)

    try:
        user_id: int = (await authenticate(app, token)).id  # type: ignore[assignment]
        await run_in_threadpool(authorize, user_id)
    except HTTPException as exc:
        code = status.WS_1008_POLICY_VIOLATION
        await websocket.close(code=code, reason=str(exc.detail)[:120])
        return
    await websocket.accept()
    runner: JobQueue = app.state.runner

    finished = False

    async with anyio.create_task_group() as group:

        async def send_all() -> None:
            nonlocal finished
            try:
                async for kind, payload in _event_stream(websocket, runner, generation_id, user_id):
                    await websocket.send_json({"event": kind, "data": payload})
                finished = True
            except WebSocketDisconnect:
                pass
            group.cancel_scope.cancel()

        async def watch_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(send_all)
        group.start_soon(watch_disconnect)
    if finished:
        await websocket.close()
