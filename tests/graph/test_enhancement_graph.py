"""The enhancement loop on the LLM path, with a scripted chat model: structured output parses,
the loop stops at the approval threshold and at the cap, the best version is kept, and an LLM
that keeps failing is retried by the node's RetryPolicy and then answered by the heuristic."""

from __future__ import annotations

import httpx
import openai
from factories import critique, enhanced_prompt, run_enhancement
from fakes import tool_call_message

from imageforge.agents.heuristics import plan_heuristic
from imageforge.agents.schemas import CritiqueDraft, EnhancedPrompt
from imageforge.traces import layout

PLAN = plan_heuristic("Artisan coffee that starts your morning right", None, 1)
SCENE, MARKERS = PLAN.scenes[0], PLAN.markers


def _draft(n: int) -> EnhancedPrompt:
    return enhanced_prompt(f"Version {n}: barista pours latte art")


def _critique(score: float) -> CritiqueDraft:
    return critique(score, suggestions=("name the cup's material",))


async def test_stops_at_the_approval_threshold(tmp_path):
    replies = [
        tool_call_message(_draft(1)),
        tool_call_message(_critique(70)),
        tool_call_message(_draft(2)),
        tool_call_message(_critique(90)),
    ]
    result, folder = await run_enhancement(tmp_path, SCENE, MARKERS, replies, max_enhancement_iterations=4)
    assert [i.critique.overall for i in result.iterations] == [70.0, 90.0]
    assert result.stop_reason == "approved" and result.best_iteration == 2
    assert all(i.enhanced.source == "llm" and i.critique.source == "llm" for i in result.iterations)
    assert (folder / layout.agent_file(2, 2)).read_text().count("APPROVED") == 1


async def test_stops_at_the_cap_and_keeps_the_best_version_not_the_last(tmp_path):
    replies = []
    for n, score in enumerate((60, 80, 70), start=1):
        replies += [tool_call_message(_draft(n)), tool_call_message(_critique(score))]
    result, folder = await run_enhancement(tmp_path, SCENE, MARKERS, replies, max_enhancement_iterations=3)
    assert len(result.iterations) == 3 and result.stop_reason == "max_iterations"
    assert result.best_iteration == 2 and result.final.prompt.startswith("Version 2")
    assert (folder / layout.FINAL_PROMPT).read_text().startswith("Version 2")


async def test_a_failing_llm_is_retried_then_the_heuristic_answers(tmp_path):
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    down = [openai.APIConnectionError(request=request) for _ in range(3)]  # every RetryPolicy attempt
    replies = [*down, tool_call_message(_critique(90))]
    result, folder = await run_enhancement(tmp_path, SCENE, MARKERS, replies, max_enhancement_iterations=1)
    [iteration] = result.iterations
    assert iteration.enhanced.source == "fallback" and iteration.critique.source == "llm"
    kinds = [e.kind for e in iteration.events]
    assert "retry" in kinds and "fallback" in kinds
    trace = (folder / layout.agent_file(1, 1)).read_text()
    assert "source: fallback" in trace and "[fallback]" in trace
