"""Ask a chat model for a pydantic object: one corrective re-ask, classified errors, usage.

The typed reply is asked for by the method the endpoint supports best (``function_calling``
by default, ``json_schema`` or ``json_mode`` by setting; see ``agents.settings``), always with
``include_raw`` so a reply that does not parse stays visible and can be shown to the model
once. The corrective turn is plain text (the problem and the failed reply quoted in a user
message), not a replay of the failed tool call: every OpenAI-compatible server accepts that
shape, while an assistant message with ``content: null`` is refused by some (llama.cpp).

Errors are classified here, not by the openai client (whose own retries are off):
- transient (connection reset, timeout, 408, 409, 429, 5xx): retried with backoff
  ``transient_retries`` times, then ``LLMTransientError`` for the graph's RetryPolicy;
- refused (400, 413, 422, or the same server error twice in a row, which is how llama.cpp
  answers a request its schema rejects): ``LLMRequestError`` at once, never sent again;
- anything else (401, 404, a bug) propagates unchanged.

Every request's usage (tokens, latency, model) is returned as an ``llm_call`` event.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from imageforge.agents.errors import LLMParseError, LLMRequestError, LLMTransientError
from imageforge.agents.schemas import AgentEvent, LLMUsage

__all__ = ["ask_structured", "classify_error", "is_transient"]

T = TypeVar("T", bound=BaseModel)

_MAX_DETAIL = 600
_REFUSED_STATUS = frozenset({400, 413, 422})
_TRANSIENT_STATUS = frozenset({408, 409, 429})
#: Backoff before retry n (1-based): 0.5 s, 1 s, 2 s, ... capped.
_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 8.0
_sleep = asyncio.sleep  # tests replace it


def classify_error(error: BaseException) -> str | None:
    """'transient', 'refused' or None (anything else: propagate). Pure, over the error's type
    and HTTP status."""
    if isinstance(error, openai.APIConnectionError | httpx.TransportError | TimeoutError):  # includes timeouts
        return "transient"
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status in _REFUSED_STATUS:
            return "refused"
        if status in _TRANSIENT_STATUS or status >= 500:
            return "transient"
    return None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying later: transport, timeout, 408/409/429 or 5xx."""
    return classify_error(error) == "transient"


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _server_message(error: BaseException) -> str:
    """The server's own words: the error body's message when there is one."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return _short(str(message))
    return _short(str(error))


def _problem(reply: dict[str, Any], schema: type[BaseModel]) -> str | None:
    """Why ``reply`` is not a ``schema`` instance, or None when it is."""
    if isinstance(reply.get("parsed"), schema):
        return None
    if reply.get("parsing_error") is not None:
        return _short(str(reply["parsing_error"]))
    raw = reply.get("raw")
    if isinstance(raw, AIMessage) and raw.invalid_tool_calls:
        bad = raw.invalid_tool_calls[0]
        return _short(
            f"the {bad.get('name') or 'tool'} call's arguments are not valid JSON: "
            f"{bad.get('error') or bad.get('args')}"
        )
    content = raw.content if isinstance(raw, BaseMessage) else raw
    return _short(f"the reply has no {schema.__name__} object (text: {str(content)[:200]!r})")


def _failed_reply(raw: Any) -> str:
    """The failed reply as text, for the corrective turn."""
    if isinstance(raw, AIMessage):
        calls = [*raw.tool_calls, *raw.invalid_tool_calls]
        if calls:
            return json.dumps(calls[0].get("args"), default=str)[:1500]
        return str(raw.content)[:1500]
    return str(raw)[:1500]


def _ask(schema: type[BaseModel], method: str) -> str:
    if method == "function_calling":
        return f"Call the `{schema.__name__}` tool"
    return f"Reply with one JSON object for `{schema.__name__}`"


def _correction(raw: Any, schema: type[BaseModel], problem: str, method: str) -> HumanMessage:
    """The corrective turn: what was wrong and what came back, as a plain user message."""
    return HumanMessage(
        f"Your previous reply could not be used: {problem}\n"
        f"It was: {_failed_reply(raw)}\n"
        f"{_ask(schema, method)} again with values that match the schema exactly: "
        "every required field present, the right types, values within the stated ranges."
    )


def _usage(raw: Any, latency_s: float) -> LLMUsage:
    tokens = getattr(raw, "usage_metadata", None) or {}
    metadata = getattr(raw, "response_metadata", None) or {}
    return LLMUsage(
        model=str(metadata.get("model_name") or metadata.get("model") or ""),
        prompt_tokens=int(tokens.get("input_tokens") or 0),
        completion_tokens=int(tokens.get("output_tokens") or 0),
        latency_s=round(latency_s, 4),
    )


async def _call(
    structured: Any, messages: list[BaseMessage], agent: str, events: list[AgentEvent], retries: int
) -> dict[str, Any]:
    """One request, with transient failures retried and refused requests recognised."""
    last_message: str | None = None
    started = time.perf_counter()
    for attempt in range(1, retries + 2):
        try:
            reply = await structured.ainvoke(messages)
        except Exception as error:
            kind = classify_error(error)
            if kind is None:
                raise
            message = _server_message(error)
            status = getattr(error, "status_code", None)
            if kind == "refused" or (status is not None and status >= 500 and message == last_message):
                events.append(
                    AgentEvent(agent=agent, kind="refused", detail=f"the server refused the request: {message}")
                )
                raise LLMRequestError(
                    f"{agent}: the server refused the request ({status}): {message}", agent=agent, events=events
                ) from error
            last_message = message if status is not None else None
            if attempt > retries:
                raise LLMTransientError(
                    f"{agent}: {type(error).__name__}: {message}", agent=agent, events=events
                ) from error
            delay = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
            events.append(
                AgentEvent(agent=agent, kind="retry", detail=f"attempt {attempt}: {message}; again in {delay:g} s")
            )
            await _sleep(delay)
            continue
        usage = _usage(reply.get("raw"), time.perf_counter() - started)
        detail = (
            f"{usage.model or 'model'}: {usage.prompt_tokens}+{usage.completion_tokens} tokens, {usage.latency_s:.2f} s"
        )
        events.append(AgentEvent(agent=agent, kind="llm_call", detail=detail, usage=usage))
        return reply
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


async def ask_structured(
    llm: BaseChatModel, schema: type[T], *, system: str, user: str, agent: str
) -> tuple[T, list[AgentEvent]]:
    """Ask ``llm`` for one ``schema`` object; ask once more with the validation error shown.

    Returns the object and the events recorded on the way (one ``llm_call`` per request with
    its usage, ``retry`` per transient failure, ``parse_retry`` when the first reply did not
    parse). Raises ``LLMParseError`` when the second reply does not parse either,
    ``LLMRequestError`` when the server refuses the request, ``LLMTransientError`` when it
    cannot answer now; all carry the events so far. Other errors propagate unchanged.
    """
    method = getattr(llm, "structured_output", "function_calling")
    retries = int(getattr(llm, "transient_retries", 0))
    structured = llm.with_structured_output(schema, method=method, include_raw=True)
    if method == "json_mode":  # JSON mode sends no schema: the prompt has to carry it
        user = (
            f"{user}\n\nReply with one JSON object matching this JSON schema:\n{json.dumps(schema.model_json_schema())}"
        )
    messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
    events: list[AgentEvent] = []

    reply = await _call(structured, messages, agent, events, retries)
    problem = _problem(reply, schema)
    if problem is None:
        return reply["parsed"], events

    events.append(
        AgentEvent(
            agent=agent,
            kind="parse_retry",
            detail=f"reply did not parse into {schema.__name__}: {problem}; asked again with the error",
        )
    )
    messages.append(_correction(reply.get("raw"), schema, problem, method))
    reply = await _call(structured, messages, agent, events, retries)
    second = _problem(reply, schema)
    if second is None:
        return reply["parsed"], events
    raise LLMParseError(
        f"{agent}: reply did not parse into {schema.__name__} after one retry: {second}",
        agent=agent,
        events=events,
    )
