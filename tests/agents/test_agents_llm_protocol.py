"""What the agents send to an OpenAI-compatible server and how they read its refusals.

Shapes: the corrective turn is plain text and an assistant message that only calls tools has
``content: ""`` (llama.cpp's schema refuses ``null``). Errors: a request the server refuses
(400/413/422, or the same server error twice) is not sent again and the heuristic answers
that step; transient errors are retried with backoff. Usage is recorded per request.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from fakes import ScriptedChatModel, tool_call_message
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from imageforge.agents import structured
from imageforge.agents.chat_model import load_chat_model
from imageforge.agents.cinematographer import enhance
from imageforge.agents.errors import LLMRequestError, LLMTransientError
from imageforge.agents.heuristics import enhance_heuristic
from imageforge.agents.prompt_engineer import CritiqueDraft
from imageforge.agents.schemas import ConsistencyMarkers, DimensionScores, ScenePlan
from imageforge.agents.structured import ask_structured, classify_error

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
DRAFT = CritiqueDraft(
    scores=DimensionScores(completeness=80, specificity=80, professionalism=80, cinematography=80, brand_alignment=80),
    critique="Fine.",
    suggestions=["Name the lens."],
)
SCENE = ScenePlan(scene_number=1, prompt="A cup of artisan coffee on a counter")
MARKERS = ConsistencyMarkers()


def _status(code: int, message: str) -> openai.APIStatusError:
    body = {"error": {"message": message}}
    return openai.APIStatusError(message, response=httpx.Response(code, request=REQUEST), body=body)


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(structured, "_sleep", record)
    return slept


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_status(400, "bad"), "refused"),
        (_status(413, "too big"), "refused"),
        (_status(422, "invalid"), "refused"),
        (_status(408, "timeout"), "transient"),
        (_status(429, "slow down"), "transient"),
        (_status(500, "boom"), "transient"),
        (_status(503, "busy"), "transient"),
        (openai.APIConnectionError(request=REQUEST), "transient"),
        (httpx.ReadError("reset"), "transient"),
        (_status(401, "no key"), None),
        (_status(404, "no such model"), None),
        (RuntimeError("bug"), None),
    ],
)
def test_errors_are_classified(error: BaseException, kind: str | None) -> None:
    assert classify_error(error) == kind


async def test_a_refused_request_is_not_sent_again_and_quotes_the_server() -> None:
    llm = ScriptedChatModel.from_replies([_status(400, "messages.2.content: Input should be a valid string")])
    llm.transient_retries = 3
    with pytest.raises(LLMRequestError, match="Input should be a valid string") as caught:
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert len(llm.calls) == 1
    assert [e.kind for e in caught.value.events] == ["refused"]


async def test_the_same_server_error_twice_is_a_refusal_not_a_transient_fault(no_backoff_sleep: list[float]) -> None:
    llm = ScriptedChatModel.from_replies([_status(500, "validation error"), _status(500, "validation error")])
    llm.transient_retries = 3
    with pytest.raises(LLMRequestError, match="validation error"):
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert len(llm.calls) == 2 and no_backoff_sleep == [0.5]


async def test_transient_errors_are_retried_with_backoff_then_answered(no_backoff_sleep: list[float]) -> None:
    llm = ScriptedChatModel.from_replies([_status(503, "busy"), _status(429, "slow"), tool_call_message(DRAFT)])
    llm.transient_retries = 2
    result, events = await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert result == DRAFT
    assert [e.kind for e in events] == ["retry", "retry", "llm_call"]
    assert no_backoff_sleep == [0.5, 1.0]


async def test_transient_errors_past_the_retries_are_transient() -> None:
    llm = ScriptedChatModel.from_replies([_status(503, "busy"), _status(502, "gateway")])
    llm.transient_retries = 1
    with pytest.raises(LLMTransientError):
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert len(llm.calls) == 2


async def test_an_agent_answers_with_its_heuristic_at_once_when_the_server_refuses() -> None:
    llm = ScriptedChatModel.from_replies([_status(422, "tool_choice is not supported")])
    llm.transient_retries = 3
    result, events = await enhance(SCENE, MARKERS, llm=llm)
    assert result.source == "fallback"
    assert result.prompt == enhance_heuristic(SCENE, MARKERS).prompt
    assert [e.kind for e in events] == ["refused", "fallback"]
    assert "tool_choice is not supported" in events[-1].detail
    assert len(llm.calls) == 1


async def test_usage_is_recorded_per_request() -> None:
    reply = tool_call_message(DRAFT)
    reply.usage_metadata = {"input_tokens": 310, "output_tokens": 42, "total_tokens": 352}
    reply.response_metadata = {"model_name": "smollm2"}
    _, events = await ask_structured(
        ScriptedChatModel.from_replies([reply]), CritiqueDraft, system="s", user="u", agent="prompt_engineer"
    )
    (call,) = events
    assert call.kind == "llm_call" and call.usage is not None
    assert (call.usage.model, call.usage.prompt_tokens, call.usage.completion_tokens) == ("smollm2", 310, 42)


def test_an_assistant_turn_that_only_calls_tools_is_sent_with_empty_string_content() -> None:
    llm = load_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    call = {"name": "report_status", "args": {}, "id": "call_1", "type": "tool_call"}
    history = [
        SystemMessage("s"),
        HumanMessage("how is it going?"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(content="running", tool_call_id="call_1"),
    ]
    payload = llm._get_request_payload(history)  # type: ignore[union-attr]
    assistant = payload["messages"][2]
    assert assistant["role"] == "assistant" and assistant["content"] == "" and assistant["tool_calls"]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_the_structured_output_method_is_a_setting(method: str) -> None:
    llm = load_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:9/v1", structured_output=method)
    assert llm.structured_output == method  # type: ignore[union-attr]


async def test_json_mode_puts_the_schema_in_the_prompt() -> None:
    """JSON mode sends no schema to the server, so the user message carries it."""
    llm = ScriptedChatModel.from_replies([tool_call_message(DRAFT)])
    llm.structured_output = "json_mode"
    await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    sent = llm.calls[0][1].content
    assert '"scores"' in sent and "JSON schema" in sent
