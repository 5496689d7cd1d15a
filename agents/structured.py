"""Ask a chat model for a pydantic object, with one corrective retry and classified errors.

``with_structured_output(schema, method="function_calling", include_raw=True)``: forcing one
named tool call is what OpenAI and the OpenAI-compatible servers (vLLM, Ollama, llama.cpp)
support most widely, and ``include_raw`` keeps a reply that does not parse visible instead of
raising inside the chain, so the validation error can be shown to the model once. Transport
trouble is not retried here: the openai client already retried with backoff
(``max_retries``), so what reaches this module is reported as ``LLMTransientError`` for the
graph's RetryPolicy to handle.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from imageforge.agents.errors import LLMParseError, LLMTransientError
from imageforge.agents.schemas import AgentEvent

__all__ = ["ask_structured", "is_transient"]

T = TypeVar("T", bound=BaseModel)

_TRANSIENT: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
    httpx.TransportError,
    TimeoutError,
)
_MAX_DETAIL = 600


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying later: transport, timeout, 429 or 5xx."""
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, openai.APIStatusError) and error.status_code >= 500


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


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
    return _short(f"the reply has no {schema.__name__} tool call (text: {str(content)[:200]!r})")


def _correction(raw: Any, schema: type[BaseModel], problem: str) -> list[BaseMessage]:
    """The follow-up turn: the failed reply, a tool result naming the error, and the ask."""
    messages: list[BaseMessage] = []
    if isinstance(raw, AIMessage):
        messages.append(raw)
        for call in [*raw.tool_calls, *raw.invalid_tool_calls]:
            if call.get("id"):
                messages.append(ToolMessage(content=f"Error: {problem}", tool_call_id=call["id"]))
    messages.append(
        HumanMessage(
            f"Your previous reply could not be used: {problem}\n"
            f"Call the `{schema.__name__}` tool again with arguments that match its schema exactly: "
            "every required field present, the right types, values within the stated ranges."
        )
    )
    return messages


async def _call(structured: Any, messages: list[BaseMessage], agent: str, events: list[AgentEvent]) -> dict[str, Any]:
    try:
        return await structured.ainvoke(messages)
    except Exception as error:
        if is_transient(error):
            raise LLMTransientError(
                f"{agent}: {type(error).__name__}: {_short(str(error))}", agent=agent, events=events
            ) from error
        raise


async def ask_structured(
    llm: BaseChatModel, schema: type[T], *, system: str, user: str, agent: str
) -> tuple[T, list[AgentEvent]]:
    """Ask ``llm`` for one ``schema`` object; retry once with the validation error shown.

    Returns the object and the events recorded on the way (a ``parse_retry`` when the first
    reply did not parse). Raises ``LLMParseError`` when the second reply does not parse
    either and ``LLMTransientError`` for transport, timeout, 429 and 5xx errors; both carry
    the events so far. Other errors propagate unchanged.
    """
    structured = llm.with_structured_output(schema, method="function_calling", include_raw=True)
    messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
    events: list[AgentEvent] = []

    reply = await _call(structured, messages, agent, events)
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
    messages += _correction(reply.get("raw"), schema, problem)
    reply = await _call(structured, messages, agent, events)
    second = _problem(reply, schema)
    if second is None:
        return reply["parsed"], events
    raise LLMParseError(
        f"{agent}: reply did not parse into {schema.__name__} after one retry: {second}",
        agent=agent,
        events=events,
    )
