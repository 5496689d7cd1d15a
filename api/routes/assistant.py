"""The assistant panel: talk to a LangGraph agent that drives the service in plain words.

A message runs one turn of the assistant graph in the conversation's checkpoint thread (the
conversation id is the thread id), so the next message finds the history, the current
storyboard and the settings. With an OpenAI-compatible chat model configured the model picks
the tools; without one the deterministic intent parser does.

The assistant page (``routes.assistant_page``) calls these routes with the pages' sign-in
cookie instead of a bearer token (``PanelUser``), and cancels through
``/conversations/{id}/cancel``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from sse_starlette import EventSourceResponse

from imageforge.api.crud import generation as generation_crud
from imageforge.api.crud.conversation import (
    create_conversation,
    delete_conversation,
    get_conversation,
    list_conversations,
    new_conversation_id,
    touch_conversation,
)
from imageforge.api.deps import (
    SESSION_COOKIE,
    RunnerDep,
    SessionDep,
    SettingsDep,
    TokenDep,
    get_current_user,
)
from imageforge.api.models.conversation import (
    AssistantAction,
    AssistantMessageCreate,
    AssistantReply,
    Conversation,
    ConversationDetail,
    ConversationPublic,
    ConversationsPublic,
)
from imageforge.api.models.generation import CancelPublic
from imageforge.api.models.user import User
from imageforge.api.routes import Responses
from imageforge.api.routes.generations import cancel_generation
from imageforge.api.services.assistant import AssistantHub, ServiceTools, conversation_messages
from imageforge.graph.assistant import AssistantContext, TurnResult, run_turn, stream_turn, turn_result
from imageforge.graph.settings_change import effective_settings

router = APIRouter(prefix="/api/assistant", tags=["assistant"])

ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_NOT_FOUND: Responses = {404: {"description": "No such conversation (or generation) for this user."}}


def same_origin(request: Request) -> bool:
    """The request came from one of this server's own pages: the browser says so
    (``Sec-Fetch-Site``), or, from a browser too old to send that, ``Origin`` names this host.
    ``Sec-Fetch-Site`` comes first because under ``Referrer-Policy: no-referrer`` a browser
    sends ``Origin: null`` even on a same-origin POST."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")


async def get_panel_user(request: Request, token: TokenDep) -> User:
    """The caller: a bearer token, or the pages' sign-in cookie, which the assistant page
    (``/assistant``) sends. The cookie authorises a change (a message, a cancel) only on a
    same-origin request, so another site cannot make a signed-in browser act; the cookie
    being SameSite=strict is the second lock."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not token and cookie and (request.method in ("GET", "HEAD") or same_origin(request)):
        token = cookie
    return await get_current_user(request, token)


PanelUser = Annotated[User, Depends(get_panel_user)]


def _hub(request: Request) -> AssistantHub:
    return request.app.state.assistant


def _llm(request: Request) -> Any:
    """The app's configured chat model; None (the intent parser answers) when there is none."""
    return getattr(request.app.state.backends.services, "llm", None)


def _prepare(engine: Any, user_id: int, body: AssistantMessageCreate) -> str:
    """The conversation to use (created when the body names none), after checking that the
    conversation and the generation the body names are the caller's: 404 otherwise, with
    nothing stored."""
    with Session(engine) as session:
        if (
            body.generation_id is not None
            and generation_crud.get_generation(session=session, generation_id=body.generation_id, user_id=user_id)
            is None
        ):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Generation {body.generation_id!r} not found.")
        if body.conversation_id is not None:
            if get_conversation(session=session, conversation_id=body.conversation_id, user_id=user_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"Conversation {body.conversation_id!r} not found.")
            touch_conversation(session=session, conversation_id=body.conversation_id)
            return body.conversation_id
        conversation_id = new_conversation_id()
        create_conversation(session=session, conversation_id=conversation_id, user_id=user_id, title=body.message)
        return conversation_id


def _context(request: Request, runner: Any, settings: Any, user_id: int) -> AssistantContext:
    service = ServiceTools(
        engine=request.app.state.engine,
        runner=runner,
        settings=settings,
        user_id=user_id,
        base_url=str(request.base_url),
    )
    return AssistantContext(service=service, llm=_llm(request))


def _reply(conversation_id: str, result: TurnResult) -> AssistantReply:
    return AssistantReply(
        conversation_id=conversation_id,
        reply=result.reply,
        actions=[AssistantAction(**action) for action in result.actions],
        generation_id=result.generation_id,
    )


@router.post("/messages", response_model=AssistantReply, responses=_NOT_FOUND)
async def post_message(
    body: AssistantMessageCreate,
    user: PanelUser,
    runner: RunnerDep,
    settings: SettingsDep,
    request: Request,
) -> AssistantReply:
    """Say something to the assistant: it answers and acts (starts a storyboard, changes the
    conversation's settings, refines a scene, explains a winner, reports the status).

    Omit ``conversation_id`` to start a conversation (its id comes back); ``generation_id``
    makes that storyboard the conversation's current one. ``actions`` lists what was done.

    Settings said in words apply to the storyboards this conversation starts or refines and
    are checked against the ranges of ``settings`` in POST /api/generate (a value out of range
    gets a reply naming the range). "Be stricter" raises the quality and consistency
    thresholds by 10 points and turns strict mode on; "be more lenient" lowers them by 10 and
    turns it off. Refining scene k submits a new generation from the current one's plan with
    scene k's prompt amended, keeping scenes 1..k-1 (``reuse_from``, ``keep_scenes``); it is
    refused until the current generation has finished scene k-1.
    """
    conversation_id = await run_in_threadpool(_prepare, request.app.state.engine, user.id, body)  # type: ignore[arg-type]
    hub = _hub(request)
    async with hub.lock(conversation_id):
        result = await run_turn(
            hub.graph,
            conversation_id=conversation_id,
            message=body.message,
            context=_context(request, runner, settings, user.id),  # type: ignore[arg-type]
            generation_id=body.generation_id,
        )
    return _reply(conversation_id, result)


@router.post(
    "/messages/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `conversation` (its id), then `tool_call` and `tool_result` per step, "
            "`reply` with the answer, and `done` with the same body POST /api/assistant/messages returns.",
        },
        **_NOT_FOUND,
    },
)
async def stream_message(
    body: AssistantMessageCreate,
    user: PanelUser,
    runner: RunnerDep,
    settings: SettingsDep,
    request: Request,
) -> EventSourceResponse:
    """POST /api/assistant/messages as a stream of the assistant's steps as they happen."""
    conversation_id = await run_in_threadpool(_prepare, request.app.state.engine, user.id, body)  # type: ignore[arg-type]
    hub = _hub(request)
    context = _context(request, runner, settings, user.id)  # type: ignore[arg-type]

    async def events() -> AsyncIterator[dict[str, str]]:
        async with hub.lock(conversation_id):
            yield {
                "event": "conversation",
                "data": json.dumps({"conversation_id": conversation_id}),
            }
            async for step in stream_turn(
                hub.graph,
                conversation_id=conversation_id,
                message=body.message,
                context=context,
                generation_id=body.generation_id,
            ):
                yield {"event": step["type"], "data": json.dumps(step, default=str)}
            snapshot = await hub.graph.aget_state({"configurable": {"thread_id": conversation_id}})
            reply = _reply(conversation_id, turn_result(snapshot.values))
            yield {"event": "done", "data": reply.model_dump_json()}

    return EventSourceResponse(events(), ping=15)


@router.get("/conversations", response_model=ConversationsPublic)
def get_conversations(
    session: SessionDep,
    user: PanelUser,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ConversationsPublic:
    """The caller's conversations, most recently active first."""
    rows, count = list_conversations(session=session, user_id=user.id, skip=skip, limit=limit)  # type: ignore[arg-type]
    return ConversationsPublic(
        data=[ConversationPublic.model_validate(row, from_attributes=True) for row in rows],
        count=count,
    )


def _owned(session: Session, conversation_id: str, user_id: int) -> Conversation:
    conversation = get_conversation(session=session, conversation_id=conversation_id, user_id=user_id)
    if conversation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Conversation {conversation_id!r} not found.")
    return conversation


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, responses=_NOT_FOUND)
async def get_conversation_detail(
    conversation_id: ConversationId, session: SessionDep, user: PanelUser, request: Request
) -> ConversationDetail:
    """One conversation: its messages (with the tool steps), current storyboard and settings."""
    conversation = await run_in_threadpool(_owned, session, conversation_id, user.id)  # type: ignore[arg-type]
    snapshot = await _hub(request).graph.aget_state({"configurable": {"thread_id": conversation_id}})
    values = snapshot.values or {}
    return ConversationDetail(
        **ConversationPublic.model_validate(conversation, from_attributes=True).model_dump(),
        generation_id=values.get("generation_id"),
        settings=effective_settings(values.get("settings") or {}).model_dump(mode="json"),
        messages=conversation_messages(values.get("messages") or []),
    )


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def remove_conversation(
    conversation_id: ConversationId, session: SessionDep, user: PanelUser, request: Request
) -> Response:
    """Forget a conversation: its record and its checkpointed memory (storyboards stay)."""
    await run_in_threadpool(_owned, session, conversation_id, user.id)  # type: ignore[arg-type]
    hub = _hub(request)
    async with hub.lock(conversation_id):
        await hub.checkpointer.adelete_thread(conversation_id)
        await run_in_threadpool(delete_conversation, session=session, conversation_id=conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/conversations/{conversation_id}/cancel",
    response_model=CancelPublic,
    responses={
        **_NOT_FOUND,
        409: {"description": "The conversation has no storyboard yet."},
    },
)
async def cancel_current(
    conversation_id: ConversationId, session: SessionDep, user: PanelUser, runner: RunnerDep, request: Request
) -> CancelPublic:
    """Cancel the conversation's current storyboard, exactly as POST /api/generations/{id}/cancel
    does: a queued one at once, a running one at its next step, keeping the scenes it finished."""
    await run_in_threadpool(_owned, session, conversation_id, user.id)  # type: ignore[arg-type]
    snapshot = await _hub(request).graph.aget_state({"configurable": {"thread_id": conversation_id}})
    generation_id = (snapshot.values or {}).get("generation_id")
    if generation_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "This conversation has no storyboard to cancel yet.")
    return await cancel_generation(generation_id, session, user, runner)
