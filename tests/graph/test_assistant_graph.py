"""The assistant graph: the offline path (intent parser in the model's place) and the LLM path
(a scripted chat model issuing tool calls) share the tools and the checkpointed memory."""

from __future__ import annotations

import pytest
from fakes import FakeService, ScriptedChatModel, tool_call_message
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from imageforge.agents.assistant import ExplainWinnerArgs, RefineSceneArgs, StartStoryboardArgs
from imageforge.graph.assistant import (
    MAX_TOOL_CALLS_PER_TURN,
    AssistantContext,
    AssistantState,
    compile_assistant,
    offline_step,
    route_model_output,
    run_turn,
    stream_turn,
)
from imageforge.graph.checkpoint import serializer


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def assistant():
    return compile_assistant(InMemorySaver())


async def say(assistant, service, message, *, llm=None, conversation="c1", generation_id=None):
    context = AssistantContext(service=service, llm=llm)
    return await run_turn(
        assistant,
        conversation_id=conversation,
        message=message,
        context=context,
        generation_id=generation_id,
    )


# Offline: the intent parser stands in for the model ------------------------------------------
async def test_offline_turns_share_memory_settings_and_the_current_storyboard(assistant, service):
    first = await say(assistant, service, "use 6 variations and make a 15 second storyboard about artisan coffee")
    assert [a["type"] for a in first.actions] == ["settings_changed", "storyboard_started"]
    assert first.generation_id == "gen1"
    assert "variations per scene 4 -> 6" in first.reply and "Started gen1 about artisan coffee" in first.reply
    _, args, settings = service.calls[0]
    assert args == StartStoryboardArgs(description="artisan coffee", target_duration_s=15.0)
    assert settings.num_variations == 6  # the change ran before the start, not beside it

    status = await say(assistant, service, "how is it going?")
    assert status.reply == "gen1 is running." and status.generation_id == "gen1"

    await say(assistant, service, "be stricter")
    refined = await say(assistant, service, "make scene 2 moodier, at night")
    _, generation_id, refine_args, overrides = service.calls[-1]
    assert generation_id == "gen1"
    assert refine_args == RefineSceneArgs(scene=2, instruction="moodier, at night")
    assert overrides == {
        "num_variations": 6,
        "quality_threshold": 40.0,
        "consistency_threshold": 40.0,
        "strict": True,
    }
    assert refined.generation_id == "gen1-r" and refined.actions[0]["reuse_from"] == "gen1"

    explained = await say(assistant, service, "why did image 3 win in scene 1?")
    assert service.calls[-1] == ("explain", "gen1-r", ExplainWinnerArgs(scene=1, image=3))
    assert explained.actions == [] and explained.reply == "Image 3 won scene 1 of gen1-r."


async def test_a_refused_step_stops_the_rest_of_the_message(assistant, service):
    result = await say(assistant, service, "use 40 variations and make a storyboard about tea")
    assert "between 1 and 16" in result.reply and "did not start the storyboard" in result.reply
    assert result.actions == [] and service.calls == [] and result.generation_id is None


async def test_unknown_requests_get_the_capabilities_and_call_nothing(assistant, service):
    result = await say(assistant, service, "tell me a joke")
    assert "not sure what you mean" in result.reply and "make scene 2 moodier" in result.reply
    assert service.calls == [] and result.actions == []
    question = await say(assistant, service, "make a storyboard")
    assert question.reply.startswith("What should the storyboard be about?")


async def test_a_given_generation_becomes_the_current_one(assistant, service):
    await say(assistant, service, "status", generation_id="theirs")
    assert service.calls[-1] == ("status", "theirs")
    await say(assistant, service, "status")  # remembered without being given again
    assert service.calls[-1] == ("status", "theirs")


async def test_conversations_are_separate_threads(assistant, service):
    await say(assistant, service, "seed 42", conversation="a")
    other = await say(assistant, service, "settings", conversation="b")
    assert "seed random" in other.reply
    same = await say(assistant, service, "settings", conversation="a")
    assert "seed 42" in same.reply


async def test_streaming_yields_each_step_in_order(assistant, service):
    context = AssistantContext(service=service)
    steps = [
        step
        async for step in stream_turn(
            assistant, conversation_id="s", message="seed 7 and how is it going?", context=context
        )
    ]
    assert [s["type"] for s in steps] == [
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "reply",
    ]
    assert steps[0]["name"] == "change_settings" and steps[0]["args"] == {"seed": 7}
    assert steps[1]["action"]["type"] == "settings_changed" and steps[1]["status"] == "success"
    assert steps[3]["content"] == "None is running."
    assert steps[-1]["content"].endswith("None is running.")


async def test_a_chat_model_reply_streams_as_it_is_written(assistant, service):
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message({}, name="report_status"),
            AIMessage(content="Your storyboard gen1 is still running, two scenes to go."),
        ]
    )
    context = AssistantContext(service=service, llm=llm)
    steps = [step async for step in stream_turn(assistant, conversation_id="w", message="status?", context=context)]
    kinds = [s["type"] for s in steps]
    assert kinds[:2] == ["tool_call", "tool_result"] and kinds[-1] == "reply"
    deltas = [s["content"] for s in steps if s["type"] == "reply_delta"]
    assert len(deltas) > 3  # word by word, before the finished reply
    assert "".join(deltas) == steps[-1]["content"] == "Your storyboard gen1 is still running, two scenes to go."
    assert kinds.index("reply_delta") > kinds.index("tool_result")  # the tool call streamed no text


def test_offline_step_without_a_user_message_offers_help():
    message = offline_step([])
    assert isinstance(message, AIMessage) and not message.tool_calls and "I can help" in message.content


def test_the_router_refuses_a_state_that_cannot_happen():
    with pytest.raises(ValueError, match="AIMessage"):
        route_model_output(AssistantState(messages=[HumanMessage(content="hi")]))


# With a chat model: the same tools through bind_tools -----------------------------------------
async def test_a_chat_model_calls_the_tools_and_writes_the_reply(assistant, service):
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message({"num_variations": 6}, name="change_settings"),
            tool_call_message({"description": "artisan coffee", "target_duration_s": 15}, name="start_storyboard"),
            AIMessage(content="Done: 6 variations, and the coffee storyboard is running."),
            tool_call_message({}, name="report_status"),
            AIMessage(content="It is running."),
        ]
    )
    first = await say(assistant, service, "Six variations please, then a 15 s coffee storyboard", llm=llm)
    assert first.reply == "Done: 6 variations, and the coffee storyboard is running."
    assert [a["type"] for a in first.actions] == ["settings_changed", "storyboard_started"]
    assert service.calls[0][2].num_variations == 6

    # The model saw the system prompt with the conversation's state, then the tool results.
    system = llm.calls[2][0]
    assert isinstance(system, SystemMessage) and "start_storyboard" in system.content
    assert "current storyboard: gen1" in system.content and "6 variations per scene" in system.content
    assert [type(m).__name__ for m in llm.calls[2][1:]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
    ]

    second = await say(assistant, service, "and now?", llm=llm)
    assert second.reply == "It is running." and service.calls[-1] == ("status", "gen1")
    history = llm.calls[3]
    assert history[1].content == "Six variations please, then a 15 s coffee storyboard"  # memory of the first turn


async def test_bad_tool_arguments_go_back_to_the_model(assistant, service):
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message({"scene": "second"}, name="refine_scene"),
            AIMessage(content="Which scene number?"),
        ]
    )
    result = await say(assistant, service, "refine the second one", llm=llm)
    error = llm.calls[1][-1]
    assert isinstance(error, ToolMessage) and error.status == "error" and "refine_scene" in error.content
    assert result.reply == "Which scene number?" and service.calls == []


async def test_a_failing_chat_model_falls_back_to_the_intent_parser(assistant, service):
    llm = ScriptedChatModel.from_replies([ConnectionError("endpoint down"), ConnectionError("still down")])
    result = await say(assistant, service, "make a 15 second storyboard about artisan coffee", llm=llm)
    assert result.generation_id == "gen1" and "Started gen1" in result.reply


async def test_a_model_that_keeps_calling_tools_is_stopped(assistant, service):
    llm = ScriptedChatModel.from_replies(
        [tool_call_message({}, name="report_status") for _ in range(MAX_TOOL_CALLS_PER_TURN + 1)]
    )
    result = await say(assistant, service, "how is it going?", llm=llm)
    assert len(service.calls) == MAX_TOOL_CALLS_PER_TURN
    assert result.reply.startswith(f"I stopped after {MAX_TOOL_CALLS_PER_TURN} steps")


# Durable memory --------------------------------------------------------------------------------
async def test_memory_survives_a_new_checkpointer_on_the_same_database(tmp_path, service):
    import aiosqlite

    path = str(tmp_path / "checkpoints.db")
    async with aiosqlite.connect(path) as connection:
        saver = AsyncSqliteSaver(connection, serde=serializer())
        await saver.setup()
        await say(compile_assistant(saver), service, "use 6 variations and make a storyboard about tea")
    async with aiosqlite.connect(path) as connection:  # as after a restart
        saver = AsyncSqliteSaver(connection, serde=serializer())
        result = await say(compile_assistant(saver), service, "settings")
    assert "6 variations per scene" in result.reply and result.generation_id == "gen1"
