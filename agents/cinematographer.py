"""The cinematographer agent: turns a scene's prompt into a production brief.

Each pass adds camera angle, shot type, lens and aperture, light direction and colour
temperature, composition, setting detail, time of day and palette; a pass after a critique
answers the critique's weakest dimension first. With an LLM it asks for an
``EnhancedPrompt``; without one, or when the LLM's replies do not parse, the heuristic
cinematographer answers.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from imageforge.agents.errors import LLMParseError, LLMRequestError
from imageforge.agents.heuristics import enhance_heuristic
from imageforge.agents.messages import user_message
from imageforge.agents.schemas import AgentEvent, ConsistencyMarkers, Critique, EnhancedPrompt, ScenePlan
from imageforge.agents.structured import ask_structured
from imageforge.agents.system_prompts import load_system_prompt

__all__ = ["enhance"]

AGENT = "cinematographer"


def _user_message(
    scene: ScenePlan,
    markers: ConsistencyMarkers,
    previous: EnhancedPrompt | None,
    critique: Critique | None,
    iteration: int,
) -> str:
    if previous is None or critique is None:
        ask = "Write the first enhanced prompt for this scene."
    else:
        weakest = critique.scores.weakest()
        ask = (
            f"Revise the previous prompt. The critique's weakest dimension is {weakest} "
            f"({getattr(critique.scores, weakest):.0f}/100): fix it first, then the suggestions, and say "
            "in `addressed` which points you answered. Keep everything that already works."
        )
    return user_message(
        f"Iteration {iteration}. {ask} Call the EnhancedPrompt tool.",
        {
            "iteration": iteration,
            "scene": scene.model_dump(mode="json"),
            "markers": markers.model_dump(mode="json"),
            "previous": previous.model_dump(mode="json", exclude={"source"}) if previous else None,
            "critique": critique.model_dump(mode="json", include={"scores", "overall", "critique", "suggestions"})
            if critique
            else None,
        },
    )


async def enhance(
    scene: ScenePlan,
    markers: ConsistencyMarkers,
    *,
    previous: EnhancedPrompt | None = None,
    critique: Critique | None = None,
    iteration: int = 1,
    llm: BaseChatModel | None,
) -> tuple[EnhancedPrompt, list[AgentEvent]]:
    """One cinematographer pass over ``scene``; ``previous`` and ``critique`` from the last round.

    Raises ``LLMTransientError`` when the endpoint cannot answer now; falls back to the
    heuristic cinematographer (source "fallback") when the LLM's replies do not parse.
    """
    if iteration < 1:
        raise ValueError(f"`iteration` counts from 1, got {iteration}.")
    if llm is None:
        return enhance_heuristic(scene, markers, previous=previous, critique=critique, iteration=iteration), []
    try:
        enhanced, events = await ask_structured(
            llm,
            EnhancedPrompt,
            system=load_system_prompt("cinematographer"),
            user=_user_message(scene, markers, previous, critique, iteration),
            agent=AGENT,
        )
    except (LLMParseError, LLMRequestError) as error:
        fallback = enhance_heuristic(scene, markers, previous=previous, critique=critique, iteration=iteration)
        return fallback.model_copy(update={"source": "fallback"}), [
            *error.events,
            AgentEvent(
                agent=AGENT,
                kind="fallback",
                detail=f"heuristic cinematographer used: {error}",
            ),
        ]
    return enhanced.model_copy(update={"source": "llm"}), events
