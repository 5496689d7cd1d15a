"""The assistant panel's LangGraph agent: a model node and a tool node in a loop.

```
START -> model --tool calls--> tools -> model --no tool calls--> END
```
The model node asks the configured OpenAI-compatible chat model (tools bound with
``bind_tools``); with no model configured, the deterministic intent parser
(``agents.intents``) stands in for it and produces the same tool calls, one at a time. The
tools run in LangGraph's ``ToolNode`` and return ``Command`` updates, so a tool that starts a
storyboard or changes a setting updates the conversation's state (current storyboard,
settings) beside its ``ToolMessage``. The conversation is the checkpoint thread: compile with
a durable checkpointer and pass the conversation id as ``thread_id``, and the next message
finds the history, the current storyboard and the settings where the last one left them.

Tools reach the service through ``AssistantContext.service`` (an ``AssistantService``), the
run context, so this module never imports the API. With no service attached (LangGraph
Studio, ``langgraph dev``, a notebook) they act on an embedded runner (graph.standalone) that
runs storyboards in this process.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, ToolRuntime
from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from imageforge.agents.assistant import (
    ChangeSettingsArgs,
    ExplainWinnerArgs,
    RefineSceneArgs,
    ReportStatusArgs,
    StartStoryboardArgs,
    ToolOutcome,
    capabilities,
    load_assistant_prompt,
)
from imageforge.agents.intents import parse_message
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.settings_change import (
    SettingsChangeError,
    apply_settings_change,
    describe_change,
    describe_settings,
    effective_settings,
)

__all__ = [
    "MAX_HISTORY_MESSAGES",
    "MAX_TOOL_CALLS_PER_TURN",
    "TOOLS",
    "AssistantContext",
    "AssistantGraph",
    "AssistantInput",
    "AssistantService",
    "AssistantState",
    "TurnResult",
    "builder",
    "call_model",
    "compile_assistant",
    "graph",
    "offline_step",
    "route_model_output",
    "run_turn",
    "service_of",
    "stream_turn",
    "turn_result",
]

logger = logging.getLogger(__name__)

#: Messages of history the chat model sees (the checkpoint keeps them all).
MAX_HISTORY_MESSAGES = 40
#: Tool calls after which a turn ends even if the model asks for more.
MAX_TOOL_CALLS_PER_TURN = 6
#: Marks the AIMessages the intent parser wrote, so a turn it did not start is never resumed by it.
PARSER_SOURCE = "intent_parser"


class AssistantService(Protocol):
    """The service behind the tools (``api.assistant.ServiceTools`` in the app; fakes in tests).

    Each method carries out one request and says what happened in a ``ToolOutcome``; a
    request it cannot carry out is a refused outcome with the reason, never an exception.
    """

    async def start_storyboard(self, args: StartStoryboardArgs, settings: GenerationSettings) -> ToolOutcome: ...

    async def refine_scene(
        self, generation_id: str | None, args: RefineSceneArgs, overrides: dict[str, Any]
    ) -> ToolOutcome: ...

    async def explain_winner(self, generation_id: str | None, args: ExplainWinnerArgs) -> ToolOutcome: ...

    async def report_status(self, generation_id: str | None) -> ToolOutcome: ...


# State and context ---------------------------------------------------------------------------
def latest(left: Any, right: Any) -> Any:
    """Reducer "the last write wins", which also accepts two writes in one step (parallel tool calls)."""
    return right


@dataclass(kw_only=True)
class AssistantInput:
    messages: Annotated[list[AnyMessage], add_messages] = field(
        default_factory=list,
        metadata={"description": "The conversation; each request adds the user's message."},
    )
    generation_id: Annotated[str | None, latest] = field(
        default=None,
        metadata={"description": "The storyboard the conversation is about (its current one)."},
    )


@dataclass(kw_only=True)
class AssistantState(AssistantInput):
    settings: Annotated[dict[str, Any], latest] = field(
        default_factory=dict,
        metadata={"description": "The conversation's settings as changes from GenerationSettings' defaults."},
    )


@dataclass(kw_only=True)
class AssistantContext:
    """Run dependencies of one assistant turn.

    The service passes its ``service`` and ``llm``; LangGraph Studio can set only the JSON-able
    fields, which configure the embedded runner the tools use when no service is attached.
    """

    service: AssistantService | None = field(
        default=None,
        metadata={"description": "Carries out the tools' requests for this user; None: the embedded runner."},
    )
    llm: BaseChatModel | None = field(
        default=None,
        metadata={"description": "OpenAI-compatible chat model; None: the intent parser answers."},
    )
    trace_root: str = field(
        default="output/reference_image_traces",
        metadata={"description": "The embedded runner's trace folder (used when no service is attached)."},
    )
    backends: BackendSettings = field(
        default_factory=BackendSettings,
        metadata={"description": "The embedded runner's backends (used when no service is attached)."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.backends, BackendSettings):  # built from JSON by LangGraph's server
            self.backends = BackendSettings.model_validate(self.backends)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Studio's context form: the JSON-able fields only (service and model are set in code)."""
        return core_schema.no_info_after_validator_function(
            lambda fields: cls(**dict(fields)), handler.generate_schema(AssistantContextFields)
        )


class AssistantContextFields(BaseModel):
    """The JSON-able part of ``AssistantContext``."""

    trace_root: str = Field("output/reference_image_traces", description="The embedded runner's trace folder.")
    backends: BackendSettings = Field(default_factory=BackendSettings, description="The embedded runner's backends.")


def service_of(context: AssistantContext) -> AssistantService:
    """The attached service, or the embedded runner for this trace root and these backends."""
    if context.service is not None:
        return context.service
    from imageforge.graph.standalone import embedded_runner  # imports the storyboard graph: only when needed

    return embedded_runner(context.trace_root, context.backends)


AssistantRuntime = ToolRuntime[AssistantContext, AssistantState]


# Tools ---------------------------------------------------------------------------------------
def _answer(runtime: AssistantRuntime, name: str, outcome: ToolOutcome, **update: Any) -> Command:
    message = ToolMessage(
        content=outcome.reply,
        name=name,
        tool_call_id=runtime.tool_call_id or name,
        artifact=outcome.action,
        status="error" if outcome.refused else "success",
    )
    if outcome.generation_id is not None:
        update["generation_id"] = outcome.generation_id
    return Command(update={"messages": [message], **update})


@tool("start_storyboard", args_schema=StartStoryboardArgs)
async def start_storyboard(
    description: str,
    target_duration_s: float | None = None,
    num_scenes: int | None = None,
    *,
    runtime: AssistantRuntime,
) -> Command:
    """Start a new storyboard from a description, with the conversation's settings. It becomes
    the conversation's current storyboard."""
    args = StartStoryboardArgs(description=description, target_duration_s=target_duration_s, num_scenes=num_scenes)
    settings = effective_settings(runtime.state.settings)
    outcome = await service_of(runtime.context).start_storyboard(args, settings)
    return _answer(runtime, "start_storyboard", outcome)


@tool("change_settings", args_schema=ChangeSettingsArgs)
async def change_settings(*, runtime: AssistantRuntime, **values: Any) -> Command:
    """Change the conversation's generation settings (variations, iterations, thresholds, strict
    mode, retries, seed, aspect ratio, resolution); with no arguments, show them."""
    args = ChangeSettingsArgs(**values)
    if not args.model_dump(exclude_defaults=True):
        current = effective_settings(runtime.state.settings)
        return _answer(
            runtime,
            "change_settings",
            ToolOutcome(reply=f"Current settings: {describe_settings(current)}."),
        )
    try:
        change = apply_settings_change(runtime.state.settings, args)
    except SettingsChangeError as exc:
        return _answer(runtime, "change_settings", ToolOutcome(reply=str(exc), refused=True))
    if not change.changed:
        reply = f"Those settings are already in place: {describe_settings(change.settings)}."
        return _answer(runtime, "change_settings", ToolOutcome(reply=reply))
    action = {
        "type": "settings_changed",
        "changes": {name: {"from": before, "to": after} for name, (before, after) in change.changed.items()},
        "settings": change.settings.model_dump(mode="json"),
    }
    reply = f"Settings changed: {describe_change(change)} Now: {describe_settings(change.settings)}."
    return _answer(
        runtime,
        "change_settings",
        ToolOutcome(reply=reply, action=action),
        settings=change.overrides,
    )


@tool("refine_scene", args_schema=RefineSceneArgs)
async def refine_scene(scene: int, instruction: str = "", *, runtime: AssistantRuntime) -> Command:
    """Refine one scene of the current storyboard with an instruction ("moodier, at night"): a
    new storyboard that keeps the scenes before it and redoes this scene and the ones after it.
    The new storyboard becomes the current one."""
    args = RefineSceneArgs(scene=scene, instruction=instruction)
    outcome = await service_of(runtime.context).refine_scene(runtime.state.generation_id, args, runtime.state.settings)
    return _answer(runtime, "refine_scene", outcome)


@tool("explain_winner", args_schema=ExplainWinnerArgs)
async def explain_winner(scene: int | None = None, image: int | None = None, *, runtime: AssistantRuntime) -> Command:
    """Explain from the trace why a variation won its scene in the current storyboard (overall
    score, runner-up margin, deciding score component), or why the image asked about lost."""
    args = ExplainWinnerArgs(scene=scene, image=image)
    outcome = await service_of(runtime.context).explain_winner(runtime.state.generation_id, args)
    return _answer(runtime, "explain_winner", outcome)


@tool("report_status", args_schema=ReportStatusArgs)
async def report_status(generation_id: str | None = None, *, runtime: AssistantRuntime) -> Command:
    """Report how a storyboard is going (the current one unless the user named another):
    status, progress, finished scenes and their quality, errors."""
    outcome = await service_of(runtime.context).report_status(generation_id or runtime.state.generation_id)
    return _answer(runtime, "report_status", outcome)


TOOLS: list[BaseTool] = [
    start_storyboard,
    change_settings,
    refine_scene,
    explain_winner,
    report_status,
]


def _tool_error(error: Exception) -> str:
    """A tool call that failed (arguments that do not fit the schema, or a bug): the model reads why."""
    logger.warning("assistant tool call failed: %s", error, exc_info=not isinstance(error, ToolException))
    return f"That step failed ({type(error).__name__}: {error}). Nothing was changed by it."


# The model node ------------------------------------------------------------------------------
def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def _current_turn(messages: Sequence[BaseMessage]) -> tuple[HumanMessage | None, list[BaseMessage]]:
    """The user's latest message and everything after it."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index], list(messages[index + 1 :])  # type: ignore[return-value]
    return None, list(messages)


_SKIPPED = {
    "start_storyboard": "start the storyboard",
    "change_settings": "change the settings",
    "refine_scene": "refine the scene",
    "explain_winner": "explain the winner",
    "report_status": "report the status",
}


def _summary(results: list[ToolMessage]) -> str:
    return "\n".join(_text(m) for m in results)


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """The intent parser in the model's place: the next tool call the user's latest message
    asks for, or (when they have all run) the reply, made of the tools' own words.

    After a refused call the rest is skipped: "use 40 variations and start a storyboard" must
    not start a storyboard with settings the user did not want.
    """
    human, turn = _current_turn(messages)
    if human is None:
        return AIMessage(content=capabilities(), response_metadata={"source": PARSER_SOURCE})
    results = [m for m in turn if isinstance(m, ToolMessage)]
    foreign = any(
        isinstance(m, AIMessage) and m.tool_calls and m.response_metadata.get("source") != PARSER_SOURCE for m in turn
    )
    parsed = parse_message(_text(human))

    def reply(text: str) -> AIMessage:
        return AIMessage(content=text, response_metadata={"source": PARSER_SOURCE})

    if foreign:  # the chat model started this turn and then failed: report what was done
        return reply(_summary(results) or capabilities())
    pending = parsed.calls[len(results) :]
    if pending and results and results[-1].status == "error":
        skipped = ", ".join(dict.fromkeys(_SKIPPED[c.name] for c in pending))
        return reply(f"{_summary(results)}\nSo I did not {skipped}.")
    if pending:
        call = pending[0]
        return AIMessage(
            content="",
            tool_calls=[
                {
                    "name": call.name,
                    "args": call.args,
                    "id": f"call_{uuid.uuid4().hex[:16]}",
                    "type": "tool_call",
                }
            ],
            response_metadata={"source": PARSER_SOURCE},
        )
    if results:
        return reply(_summary(results))
    if parsed.kind == "clarify" and parsed.question:
        return reply(parsed.question)
    if parsed.kind == "help":
        return reply(capabilities())
    return reply(f"I'm not sure what you mean by {_text(human)[:200]!r}. {capabilities()}")


def _conversation_note(state: AssistantState) -> str:
    settings = effective_settings(state.settings)
    current = state.generation_id or "none yet"
    return f"\n\nConversation state\n- current storyboard: {current}\n- settings: {describe_settings(settings)}"


async def _ask_llm(llm: BaseChatModel, state: AssistantState) -> AIMessage:
    history = trim_messages(
        state.messages,
        strategy="last",
        token_counter=len,
        max_tokens=MAX_HISTORY_MESSAGES,
        start_on="human",
        include_system=False,
    )
    system = SystemMessage(content=load_assistant_prompt() + _conversation_note(state))
    response = await llm.bind_tools(TOOLS).ainvoke([system, *history])
    if not isinstance(response, AIMessage):
        raise TypeError(f"the chat model answered with {type(response).__name__}, not an AIMessage")
    return response


async def call_model(state: AssistantState, runtime: Runtime[AssistantContext]) -> dict[str, list[AIMessage]]:
    """The next step of the turn: tool calls, or the reply."""
    _, turn = _current_turn(state.messages)
    done = sum(1 for m in turn if isinstance(m, ToolMessage))
    if done >= MAX_TOOL_CALLS_PER_TURN:
        results = [m for m in turn if isinstance(m, ToolMessage)]
        note = f"I stopped after {done} steps in one turn. What was done:\n{_summary(results)}"
        return {"messages": [AIMessage(content=note, response_metadata={"source": PARSER_SOURCE})]}
    llm = runtime.context.llm
    if llm is None and runtime.context.service is None:  # standalone: the embedded runner's chat model
        from imageforge.graph.services import aservices_for  # only when needed, as service_of does

        standalone = Context(backends=runtime.context.backends, trace_root=runtime.context.trace_root)
        llm = (await aservices_for(standalone)).llm
    if llm is not None:
        try:
            return {"messages": [await _ask_llm(llm, state)]}
        except Exception:  # an endpoint that cannot answer must not leave the user without a reply
            logger.warning(
                "the assistant's chat model failed; the intent parser answers this step",
                exc_info=True,
            )
    return {"messages": [offline_step(state.messages)]}


def route_model_output(state: AssistantState) -> Literal["tools", "__end__"]:
    """To the tools when the model asked for any, else the turn is over."""
    last = state.messages[-1] if state.messages else None
    if not isinstance(last, AIMessage):
        raise ValueError(f"the model node must end with an AIMessage, got {type(last).__name__}")
    return "tools" if last.tool_calls else "__end__"  # END, spelt as the Literal it is


# The graph -----------------------------------------------------------------------------------
builder = StateGraph(AssistantState, input_schema=AssistantInput, context_schema=AssistantContext)
builder.add_node("model", call_model)
builder.add_node("tools", ToolNode(TOOLS, handle_tool_errors=_tool_error))
builder.add_edge(START, "model")
builder.add_conditional_edges("model", route_model_output, ["tools", END])
builder.add_edge("tools", "model")

graph = builder.compile(name="ImageForge assistant")

#: The compiled assistant; its run context is an ``AssistantContext``.
AssistantGraph = CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantState]


def compile_assistant(checkpointer: BaseCheckpointSaver | None) -> AssistantGraph:
    """The assistant bound to a checkpointer: its threads are the conversations."""
    return builder.compile(checkpointer=checkpointer, name=graph.name)


# Running one turn ---------------------------------------------------------------------------
class TurnResult(BaseModel):
    """What one message led to."""

    reply: str
    actions: list[dict[str, Any]] = Field(default_factory=list)
    generation_id: str | None = None


def turn_result(values: dict[str, Any]) -> TurnResult:
    """The latest turn of a conversation's state: the reply, the tools' actions, the current storyboard."""
    _, turn = _current_turn(values.get("messages") or [])
    actions = [dict(m.artifact) for m in turn if isinstance(m, ToolMessage) and isinstance(m.artifact, dict)]
    replies = [m for m in turn if isinstance(m, AIMessage) and not m.tool_calls]
    return TurnResult(
        reply=_text(replies[-1]) if replies else "",
        actions=actions,
        generation_id=values.get("generation_id"),
    )


def _config(conversation_id: str) -> RunnableConfig:
    return {
        "configurable": {"thread_id": conversation_id},
        "recursion_limit": 4 * MAX_TOOL_CALLS_PER_TURN + 4,
    }


def _payload(message: str, generation_id: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"messages": [HumanMessage(content=message)]}
    if generation_id is not None:
        payload["generation_id"] = generation_id
    return payload


def _steps(node: str, update: Any) -> list[dict[str, Any]]:
    """The steps one node's update holds (the tool node's is a list of ``Command`` updates)."""
    steps: list[dict[str, Any]] = []
    for item in update if isinstance(update, list) else [update]:
        for out in item.get("messages") or [] if isinstance(item, dict) else []:
            if node == "model" and isinstance(out, AIMessage):
                calls = [
                    {"type": "tool_call", "name": c["name"], "args": c["args"], "id": c["id"]} for c in out.tool_calls
                ]
                steps += calls or [{"type": "reply", "content": _text(out)}]
            elif isinstance(out, ToolMessage):
                action = out.artifact if isinstance(out.artifact, dict) else None
                steps.append(
                    {
                        "type": "tool_result",
                        "name": out.name,
                        "id": out.tool_call_id,
                        "status": out.status,
                        "content": _text(out),
                        "action": action,
                    }
                )
    return steps


async def stream_turn(
    assistant: AssistantGraph,
    *,
    conversation_id: str,
    message: str,
    context: AssistantContext,
    generation_id: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Run one turn, yielding its steps as they happen: ``tool_call`` (name, args),
    ``tool_result`` (name, content, status, action) and ``reply`` (content) events, and before
    a reply from a chat model its text as it is written, in ``reply_delta`` (content) events.

    ``generation_id`` makes that storyboard the conversation's current one first.
    """
    # The input is a partial state dict (only the keys this turn sets), which LangGraph takes
    # but its stubs do not: they ask for a whole AssistantInput. "messages" streams the chat
    # model's tokens (LangGraph switches an ``ainvoke`` inside a node to streaming for it);
    # "updates" carries each node's finished output, which stays the authority on the reply.
    stream = assistant.astream(  # type: ignore[call-overload]
        _payload(message, generation_id),
        _config(conversation_id),
        context=context,
        stream_mode=["updates", "messages"],
    )
    async with aclosing(stream):
        async for mode, chunk in stream:
            if mode == "messages":
                delta = _reply_delta(*chunk)
                if delta:
                    yield {"type": "reply_delta", "content": delta}
                continue
            for node, update in chunk.items():
                for step in _steps(node, update):
                    yield step


def _reply_delta(message: Any, metadata: dict[str, Any]) -> str:
    """The text a streamed chunk of the model node adds; tool-call chunks add none."""
    if metadata.get("langgraph_node") != "model" or not isinstance(message, AIMessageChunk):
        return ""
    return message.content if isinstance(message.content, str) else _text(message)


async def run_turn(
    assistant: AssistantGraph,
    *,
    conversation_id: str,
    message: str,
    context: AssistantContext,
    generation_id: str | None = None,
) -> TurnResult:
    """Run one turn to the end and return its result."""
    async for _ in stream_turn(
        assistant,
        conversation_id=conversation_id,
        message=message,
        context=context,
        generation_id=generation_id,
    ):
        pass
    snapshot = await assistant.aget_state(_config(conversation_id))
    return turn_result(snapshot.values)
