"""The prompt engineer agent: scores an enhanced prompt and says what would improve it.

Five dimensions, 0-100 each (``agents.rubric`` and ``prompts/prompt_engineer.txt`` spell out
what earns points). The overall score is always the weighted mean computed here from the
dimension scores, never a number the LLM reports, so one threshold means the same thing
whichever agent answered. Faithfulness is a pass/fail item beside them: a version that lost
the scene's subject (the LLM's ``subject_kept``, the heuristic's term check) scores 0 overall.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from imageforge.agents.errors import LLMParseError, LLMRequestError
from imageforge.agents.heuristics import critique_heuristic, scene_subject
from imageforge.agents.messages import user_message
from imageforge.agents.schemas import (
    AgentEvent,
    ConsistencyMarkers,
    Critique,
    CritiqueDraft,
    EnhancedPrompt,
    ScenePlan,
)
from imageforge.agents.structured import ask_structured
from imageforge.agents.system_prompts import load_system_prompt

__all__ = ["review"]

AGENT = "prompt_engineer"


def _user_message(enhanced: EnhancedPrompt, scene: ScenePlan, markers: ConsistencyMarkers) -> str:
    return user_message(
        "Score the enhanced prompt below against the rubric, name what is missing and give "
        "concrete suggestions. Call the CritiqueDraft tool.",
        {
            "scene_subject": scene_subject(scene),
            "enhanced": enhanced.model_dump(mode="json", exclude={"source", "addressed"}),
            "scene": scene.model_dump(mode="json"),
            "markers": markers.model_dump(mode="json"),
        },
    )


async def review(
    enhanced: EnhancedPrompt,
    scene: ScenePlan,
    markers: ConsistencyMarkers,
    *,
    llm: BaseChatModel | None,
) -> tuple[Critique, list[AgentEvent]]:
    """Score ``enhanced`` and critique it.

    Raises ``LLMTransientError`` when the endpoint cannot answer now; falls back to the
    heuristic prompt engineer (source "fallback") when the LLM's replies do not parse.
    """
    if llm is None:
        return critique_heuristic(enhanced, scene, markers), []
    try:
        draft, events = await ask_structured(
            llm,
            CritiqueDraft,
            system=load_system_prompt("prompt_engineer"),
            user=_user_message(enhanced, scene, markers),
            agent=AGENT,
        )
    except (LLMParseError, LLMRequestError) as error:
        fallback = critique_heuristic(enhanced, scene, markers)
        return fallback.model_copy(update={"source": "fallback"}), [
            *error.events,
            AgentEvent(
                agent=AGENT,
                kind="fallback",
                detail=f"heuristic prompt engineer used: {error}",
            ),
        ]
    critique = Critique(
        scores=draft.scores,
        critique=draft.critique,
        suggestions=draft.suggestions,
        subject_kept=draft.subject_kept,
        source="llm",
    )
    return critique, events
