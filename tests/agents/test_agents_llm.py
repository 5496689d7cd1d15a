"""The LLM path of the agents, through real structured-output parsing on scripted replies."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from fakes import ScriptedChatModel, SleepyChatModel, text_message, tool_call_message

from imageforge.agents import LLMParseError, LLMTransientError, ask_structured, enhance, plan, review
from imageforge.agents.heuristics import critique_heuristic, enhance_heuristic, plan_heuristic
from imageforge.agents.planner import PlanDraft, SceneDraft
from imageforge.agents.schemas import (
    ConsistencyMarkers,
    CritiqueDraft,
    DimensionScores,
    EnhancedPrompt,
    weighted_overall,
)

COFFEE = "Artisan coffee that starts your morning right"
PLAN = plan_heuristic(COFFEE, 15, None)
SCENE = PLAN.scenes[1]
MARKERS = PLAN.markers
ENHANCED = enhance_heuristic(SCENE, MARKERS)
DRAFT = CritiqueDraft(
    scores=DimensionScores(completeness=90, specificity=80, professionalism=70, cinematography=95, brand_alignment=60),
    critique="Brand alignment is weakest: the palette is not named.",
    suggestions=["Name the palette: espresso brown, cream, caramel."],
)
REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def bad_critique() -> object:
    """A tool call whose arguments miss the required scores."""
    return tool_call_message({"critique": "looks fine"}, name="CritiqueDraft")


def plan_draft(n: int, *, ids: list[str] | None = None) -> PlanDraft:
    scenes = [
        SceneDraft(
            prompt=f"Scene {k} of the coffee story in the kitchen at dawn",
            beat="build",
            duration_s=2.0,
            character_ids=ids or [],
        )
        for k in range(1, n + 1)
    ]
    return PlanDraft(scenes=scenes, markers=MARKERS)


# --- ask_structured -----------------------------------------------------------------------


def kinds(events) -> list[str]:
    """The events other than the per-request ``llm_call`` records."""
    return [e.kind for e in events if e.kind != "llm_call"]


def notes(events):
    return [e for e in events if e.kind != "llm_call"]


async def test_structured_reply_parses_into_the_schema():
    llm = ScriptedChatModel.from_replies([tool_call_message(DRAFT)])
    result, events = await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert result == DRAFT and kinds(events) == []
    assert len(llm.calls) == 1
    assert [e.kind for e in events] == ["llm_call"] and events[0].usage is not None


async def test_unparsable_first_reply_is_retried_once_with_the_error():
    llm = ScriptedChatModel.from_replies([bad_critique(), tool_call_message(DRAFT)])
    result, events = await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert result == DRAFT
    assert kinds(events) == ["parse_retry"]
    assert "scores" in notes(events)[0].detail and notes(events)[0].agent == "prompt_engineer"
    retry_turn = llm.calls[1]
    # The corrective turn is one plain user message quoting the problem and the failed reply: a
    # shape every server accepts (no replayed assistant tool call, whose null content some refuse).
    assert [type(m).__name__ for m in retry_turn] == ["SystemMessage", "HumanMessage", "HumanMessage"]
    assert "scores" in retry_turn[-1].content and "CritiqueDraft" in retry_turn[-1].content


async def test_a_reply_without_tool_call_is_also_retried():
    llm = ScriptedChatModel.from_replies([text_message("I think it is fine."), tool_call_message(DRAFT)])
    result, events = await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert result == DRAFT
    assert "no CritiqueDraft object" in notes(events)[0].detail


async def test_two_unparsable_replies_raise_parse_error_with_events():
    llm = ScriptedChatModel.from_replies([bad_critique(), text_message()])
    with pytest.raises(LLMParseError) as caught:
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert kinds(caught.value.events) == ["parse_retry"]
    assert caught.value.agent == "prompt_engineer"


@pytest.mark.parametrize(
    "error",
    [
        openai.APIConnectionError(request=REQUEST),
        openai.APITimeoutError(request=REQUEST),
        openai.RateLimitError("slow down", response=httpx.Response(429, request=REQUEST), body=None),
        openai.InternalServerError("boom", response=httpx.Response(500, request=REQUEST), body=None),
        openai.APIStatusError("unavailable", response=httpx.Response(503, request=REQUEST), body=None),
        httpx.ConnectError("refused", request=REQUEST),
        TimeoutError("deadline"),
    ],
    ids=["connection", "timeout", "429", "500", "503", "httpx", "timeout-builtin"],
)
async def test_transport_errors_become_transient_errors(error):
    llm = ScriptedChatModel.from_replies([error])
    with pytest.raises(LLMTransientError) as caught:
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert caught.value.__cause__ is error


async def test_transient_error_after_a_parse_retry_carries_the_retry_event():
    llm = ScriptedChatModel.from_replies([bad_critique(), openai.APIConnectionError(request=REQUEST)])
    with pytest.raises(LLMTransientError) as caught:
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")
    assert kinds(caught.value.events) == ["parse_retry"]


@pytest.mark.parametrize(
    "error",
    [
        openai.AuthenticationError("no key", response=httpx.Response(401, request=REQUEST), body=None),
        RuntimeError("bug"),
    ],
)
async def test_other_errors_propagate_unchanged(error):
    llm = ScriptedChatModel.from_replies([error])
    with pytest.raises(type(error)):
        await ask_structured(llm, CritiqueDraft, system="s", user="u", agent="prompt_engineer")


# --- prompt engineer ----------------------------------------------------------------------


async def test_review_with_llm_computes_overall_from_the_scores():
    reply = tool_call_message({**DRAFT.model_dump(mode="json"), "overall": 99.0}, name="CritiqueDraft")
    llm = ScriptedChatModel.from_replies([reply])
    critique, events = await review(ENHANCED, SCENE, MARKERS, llm=llm)
    assert critique.source == "llm" and kinds(events) == []
    assert critique.overall == weighted_overall(DRAFT.scores) != 99.0
    assert critique.suggestions == DRAFT.suggestions
    assert '"prompt"' in llm.calls[0][1].content  # the enhanced prompt travels as JSON


async def test_review_falls_back_to_heuristic_after_two_bad_replies():
    llm = ScriptedChatModel.from_replies([bad_critique(), text_message()])
    critique, events = await review(ENHANCED, SCENE, MARKERS, llm=llm)
    assert critique.source == "fallback"
    assert critique.scores == critique_heuristic(ENHANCED, SCENE, MARKERS).scores
    assert kinds(events) == ["parse_retry", "fallback"]
    assert "heuristic prompt engineer" in events[-1].detail


async def test_review_without_llm_is_heuristic():
    critique, events = await review(ENHANCED, SCENE, MARKERS, llm=None)
    assert critique == critique_heuristic(ENHANCED, SCENE, MARKERS) and kinds(events) == []


# --- cinematographer ----------------------------------------------------------------------


async def test_enhance_with_llm_marks_source_and_passes_the_critique():
    answer = ENHANCED.model_copy(update={"prompt": "LLM brief: macro close-up, 100mm at f/2.8.", "source": "heuristic"})
    llm = ScriptedChatModel.from_replies([tool_call_message(answer)])
    critique = critique_heuristic(ENHANCED, SCENE, MARKERS)
    result, events = await enhance(SCENE, MARKERS, previous=ENHANCED, critique=critique, iteration=2, llm=llm)
    assert result.source == "llm" and result.prompt.startswith("LLM brief") and kinds(events) == []
    sent = llm.calls[0][1].content
    assert f"weakest dimension is {critique.scores.weakest()}" in sent and "Iteration 2" in sent


async def test_enhance_falls_back_with_source_fallback():
    bad = tool_call_message({"prompt": "no camera fields"}, name="EnhancedPrompt")
    llm = ScriptedChatModel.from_replies([bad, bad])
    result, events = await enhance(SCENE, MARKERS, llm=llm)
    assert result.source == "fallback"
    assert result.prompt == enhance_heuristic(SCENE, MARKERS).prompt
    assert kinds(events) == ["parse_retry", "fallback"]


async def test_enhance_lets_transient_errors_through():
    llm = ScriptedChatModel.from_replies([openai.APITimeoutError(request=REQUEST)])
    with pytest.raises(LLMTransientError):
        await enhance(SCENE, MARKERS, llm=llm)


# --- planner ------------------------------------------------------------------------------


async def test_plan_with_llm_is_numbered_and_fitted_to_the_duration():
    llm = ScriptedChatModel.from_replies([tool_call_message(plan_draft(4, ids=["character_1"]), name="PlanDraft")])
    result, events = await plan(COFFEE, 15, None, llm=llm)
    assert result.source == "llm" and kinds(events) == []
    assert [s.scene_number for s in result.scenes] == [1, 2, 3, 4]
    assert sum(s.duration_s for s in result.scenes) == pytest.approx(15)
    assert result.markers == MARKERS and result.concept == COFFEE


async def test_plan_with_wrong_scene_count_is_retried_with_the_error():
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message(plan_draft(3), name="PlanDraft"),
            tool_call_message(plan_draft(4), name="PlanDraft"),
        ]
    )
    result, events = await plan(COFFEE, 15, None, llm=llm)
    assert len(result.scenes) == 4 and result.source == "llm"
    assert kinds(events) == ["parse_retry"] and "at least 4" in notes(events)[0].detail


async def test_plan_with_unknown_character_ids_is_retried():
    unknown = plan_draft(2).model_dump(mode="json")
    unknown["scenes"][0]["character_ids"] = ["maya"]
    llm = ScriptedChatModel.from_replies(
        [
            tool_call_message(unknown, name="PlanDraft"),
            tool_call_message(plan_draft(2, ids=["character_2"]), name="PlanDraft"),
        ]
    )
    result, events = await plan(COFFEE, None, 2, llm=llm)
    assert result.scenes[0].character_ids == ["character_2"]
    assert "character id 'maya'" in notes(events)[0].detail


async def test_plan_falls_back_to_heuristic_after_two_bad_replies():
    llm = ScriptedChatModel.from_replies([text_message(), text_message()])
    result, events = await plan(COFFEE, 15, None, llm=llm)
    assert result.source == "fallback"
    assert result.scenes == plan_heuristic(COFFEE, 15, None).scenes
    assert kinds(events) == ["parse_retry", "fallback"]


async def test_plan_checks_inputs_before_calling_the_llm():
    llm = ScriptedChatModel.from_replies([])
    with pytest.raises(ValueError, match="num_scenes"):
        await plan(COFFEE, 15, 40, llm=llm)
    assert llm.calls == []


# --- the sleepy endpoint, end to end ------------------------------------------------------


async def test_sleepy_model_runs_the_whole_flow_through_structured_output():
    llm = SleepyChatModel(delay_s=0.0)
    storyboard, _ = await plan(COFFEE, 15, None, llm=llm)
    assert storyboard.source == "llm" and len(storyboard.scenes) == 4

    async def loop(s):
        previous = critique = None
        overalls = []
        for iteration in range(1, 5):
            previous, _ = await enhance(
                s,
                storyboard.markers,
                previous=previous,
                critique=critique,
                iteration=iteration,
                llm=llm,
            )
            critique, _ = await review(previous, s, storyboard.markers, llm=llm)
            assert previous.source == critique.source == "llm"
            overalls.append(critique.overall)
            if critique.overall >= 85:
                break
        return overalls

    results = await asyncio.gather(*(loop(s) for s in storyboard.scenes))
    assert all(r[-1] >= 85 for r in results)
    assert llm.max_in_flight == len(storyboard.scenes)  # the scenes' calls overlapped
    assert llm.calls == 1 + 2 * sum(len(r) for r in results)


async def test_sleepy_model_answers_like_the_heuristic_agent():
    llm = SleepyChatModel(delay_s=0.0)
    result, _ = await enhance(SCENE, MARKERS, llm=llm)
    assert result.model_copy(update={"source": "heuristic"}) == enhance_heuristic(SCENE, MARKERS)
    assert isinstance(result, EnhancedPrompt)


def test_markers_survive_the_round_trip_as_a_tool_call():
    message = tool_call_message(plan_draft(1))
    assert message.tool_calls[0]["name"] == "PlanDraft"
    assert ConsistencyMarkers(**message.tool_calls[0]["args"]["markers"]) == MARKERS
