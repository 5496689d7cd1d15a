"""Chat-model test doubles that exercise the real structured-output path, offline.

``ScriptedChatModel`` replays a script: each call returns the next AIMessage (build tool-call
replies with ``tool_call_message``) or raises the next exception. Its ``bind_tools`` returns
the model itself, which is all ``BaseChatModel.with_structured_output`` needs to parse the
scripted tool calls into pydantic objects, so tests go through the same parser, retry and
fallback code as a real endpoint.

``SleepyChatModel`` answers every structured request correctly, like the heuristic agents
would, after sleeping ``delay_s`` per call (``asyncio.sleep``, so concurrent calls overlap).
Benchmarks use it to measure how well the graph overlaps LLM latency; ``max_in_flight``
records the most calls that were waiting at once.

    llm = ScriptedChatModel.from_replies([tool_call_message(draft), APIConnectionError(...)])
    llm = SleepyChatModel(delay_s=0.2)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from imageforge.agents.assistant import ExplainWinnerArgs, RefineSceneArgs, StartStoryboardArgs, ToolOutcome
from imageforge.agents.heuristics import critique_heuristic, enhance_heuristic, plan_heuristic
from imageforge.agents.messages import read_payload
from imageforge.agents.planner import PlanDraft, SceneDraft
from imageforge.agents.schemas import ConsistencyMarkers, Critique, CritiqueDraft, EnhancedPrompt, ScenePlan
from imageforge.graph.context import GenerationSettings

__all__ = [
    "ScriptedChatModel",
    "SleepyChatModel",
    "heuristic_reply",
    "text_message",
    "tool_call_message",
]


def tool_call_message(obj: BaseModel | dict[str, Any], *, name: str | None = None) -> AIMessage:
    """An AIMessage calling the tool named after ``obj``'s class with ``obj`` as arguments.

    Pass a dict and a ``name`` to script arguments that do not validate (a bad reply).
    """
    if isinstance(obj, BaseModel):
        args = obj.model_dump(mode="json")
        name = name or type(obj).__name__
    else:
        args = obj
        if name is None:
            raise ValueError("`name` is required when `obj` is a dict.")
    call_id = "call_" + hashlib.sha256(f"{name}{json.dumps(args, sort_keys=True)}".encode()).hexdigest()[:12]
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def text_message(text: str = "Sorry, I can only answer in prose.") -> AIMessage:
    """A reply with no tool call at all, which structured output cannot parse."""
    return AIMessage(content=text)


class ScriptedChatModel(GenericFakeChatModel):
    """Replays ``messages`` in order: AIMessages or strings are returned, exceptions raised.

    ``calls`` keeps the messages of each call, so a test can read what the agent sent (the
    correction turn of a parse retry, for instance).
    """

    messages: Iterator[Any]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    transient_retries: int = 0  # read by agents.structured, as on OpenAICompatibleChat
    structured_output: str = "function_calling"

    @classmethod
    def from_replies(cls, replies: Sequence[AIMessage | str | BaseException]) -> ScriptedChatModel:
        return cls(messages=iter(list(replies)))

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        reply = next(self.messages, None)
        if reply is None:
            raise AssertionError(f"ScriptedChatModel ran out of replies at call {len(self.calls)}.")
        if isinstance(reply, BaseException):
            raise reply
        message = AIMessage(content=reply) if isinstance(reply, str) else reply
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop=stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The scripted reply as a streaming endpoint sends it: the text word by word, then the
        tool calls and usage in a last chunk (GenericFakeChatModel's own stream drops a reply
        that has tool calls and no text)."""
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        assert isinstance(message, AIMessage)
        text = message.content if isinstance(message.content, str) else ""
        for word in re.findall(r"\s*\S+\s*$|\s*\S+", text):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word, id=message.id))
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        calls = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(message.tool_calls)
        ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=message.id,
                tool_call_chunks=calls,  # type: ignore[arg-type]
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop=stop, **kwargs):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def heuristic_reply(tool_name: str, messages: list[BaseMessage]) -> BaseModel:
    """What the heuristic agent would answer to the agent request in ``messages``.

    Reads the inputs back from the JSON block of the first user message and returns an
    object of the schema named ``tool_name`` (PlanDraft, EnhancedPrompt or CritiqueDraft).
    """
    first_user = next(m for m in messages if isinstance(m, HumanMessage))
    payload = read_payload(str(first_user.content))
    if tool_name == "PlanDraft":
        plan = plan_heuristic(payload["concept"], payload["target_duration_s"], payload["num_scenes"])
        return PlanDraft(
            scenes=[SceneDraft(**s.model_dump(exclude={"scene_number"})) for s in plan.scenes],
            markers=plan.markers,
        )
    scene = ScenePlan(**payload["scene"])
    markers = ConsistencyMarkers(**payload["markers"])
    if tool_name == "EnhancedPrompt":
        return enhance_heuristic(
            scene,
            markers,
            previous=EnhancedPrompt(**payload["previous"]) if payload["previous"] else None,
            critique=Critique(**payload["critique"]) if payload["critique"] else None,
            iteration=payload["iteration"],
        )
    if tool_name == "CritiqueDraft":
        critique = critique_heuristic(EnhancedPrompt(**payload["enhanced"]), scene, markers)
        return CritiqueDraft(scores=critique.scores, critique=critique.critique, suggestions=critique.suggestions)
    raise ValueError(f"`tool_name` must be PlanDraft, EnhancedPrompt or CritiqueDraft, got {tool_name!r}.")


class SleepyChatModel(BaseChatModel):
    """A slow but always-valid structured-output endpoint: sleeps, then answers as the
    heuristic agents would, as a tool call that the real parser turns into the schema.

    ``calls`` counts requests; ``max_in_flight`` is the most requests waiting at once.
    """

    delay_s: float = Field(0.05, ge=0, description="Seconds each call sleeps before answering.")
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Any:
        tool = tools[0]
        name = tool.__name__ if isinstance(tool, type) else convert_to_openai_tool(tool)["function"]["name"]
        return self.bind(tool_name=name)

    def _reply(self, messages: list[BaseMessage], tool_name: str | None) -> ChatResult:
        if tool_name is None:
            message = AIMessage(content="SleepyChatModel only answers structured-output requests.")
        else:
            message = tool_call_message(heuristic_reply(tool_name, messages))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        tool_name: str | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        time.sleep(self.delay_s)
        return self._reply(messages, tool_name)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        tool_name: str | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return self._reply(messages, tool_name)

    @property
    def _llm_type(self) -> str:
        return "sleepy-fake"


@dataclass
class FakeService:
    """Records what the tools asked for and answers like the service would."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    started: int = 0

    async def start_storyboard(self, args: StartStoryboardArgs, settings: GenerationSettings) -> ToolOutcome:
        self.started += 1
        generation_id = f"gen{self.started}"
        self.calls.append(("start", args, settings))
        return ToolOutcome(
            reply=f"Started {generation_id} about {args.description}.",
            action={"type": "storyboard_started", "generation_id": generation_id},
            generation_id=generation_id,
        )

    async def refine_scene(
        self, generation_id: str | None, args: RefineSceneArgs, overrides: dict[str, Any]
    ) -> ToolOutcome:
        self.calls.append(("refine", generation_id, args, overrides))
        if generation_id is None:
            return ToolOutcome(reply="There is no storyboard to refine yet.", refused=True)
        return ToolOutcome(
            reply=f"Refining scene {args.scene} of {generation_id}.",
            action={
                "type": "scene_refined",
                "generation_id": f"{generation_id}-r",
                "reuse_from": generation_id,
            },
            generation_id=f"{generation_id}-r",
        )

    async def explain_winner(self, generation_id: str | None, args: ExplainWinnerArgs) -> ToolOutcome:
        self.calls.append(("explain", generation_id, args))
        return ToolOutcome(reply=f"Image {args.image} won scene {args.scene} of {generation_id}.")

    async def report_status(self, generation_id: str | None) -> ToolOutcome:
        self.calls.append(("status", generation_id))
        return ToolOutcome(
            reply=f"{generation_id} is running.",
            action={"type": "status_reported", "generation_id": generation_id},
        )
