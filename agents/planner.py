"""The planner agent: concept + target duration -> scenes and shared consistency markers.

With an LLM it asks for a ``PlanDraft`` whose scene count is fixed in the schema itself, so
a wrong count comes back as a validation error the model can correct on its one retry. The
answer is then numbered 1..n and its durations fitted to the target. Without an LLM, or when
the LLM's replies do not parse, the heuristic planner answers.
"""

from __future__ import annotations

import re
from functools import cache

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, Field, create_model, model_validator

from imageforge.agents.errors import LLMParseError, LLMRequestError
from imageforge.agents.heuristics import check_plan_inputs, plan_heuristic, scenes_for_duration
from imageforge.agents.messages import user_message
from imageforge.agents.schemas import AgentEvent, ConsistencyMarkers, ScenePlan, StoryboardPlan
from imageforge.agents.structured import ask_structured
from imageforge.agents.system_prompts import load_system_prompt

__all__ = ["PlanDraft", "SceneDraft", "plan", "plan_draft_schema"]

AGENT = "planner"


class SceneDraft(BaseModel):
    """One scene as the planner proposes it; the scene number is assigned afterwards."""

    prompt: str = Field(min_length=1, description="Concrete image prompt: subject, action, place, time of day.")
    beat: str = Field("", description="Narrative role: hook, build, reveal, payoff or call to action.")
    duration_s: float = Field(0.0, ge=0, description="Seconds of the video this scene covers.")
    character_ids: list[str] = Field(
        default_factory=list,
        description="'character_<k>' for each markers.characters[k-1] shown in this scene.",
    )
    subject: str = Field(
        "",
        description="Who or what the scene shows, in the concept's own words (e.g. 'the lighthouse keeper').",
    )


class PlanDraft(BaseModel):
    """A storyboard plan: scenes in story order and the consistency markers they all share."""

    scenes: list[SceneDraft] = Field(min_length=1)
    markers: ConsistencyMarkers

    @model_validator(mode="after")
    def _check_character_ids(self) -> PlanDraft:
        count = len(self.markers.characters)
        for number, scene in enumerate(self.scenes, start=1):
            for cid in scene.character_ids:
                match = re.fullmatch(r"character_(\d+)", cid)
                if match is None or not 1 <= int(match.group(1)) <= count:
                    raise ValueError(
                        f"scene {number}: character id {cid!r} must be 'character_<k>' with k from 1 to "
                        f"{count} (the position in markers.characters)"
                    )
        return self


@cache
def plan_draft_schema(num_scenes: int) -> type[PlanDraft]:
    """``PlanDraft`` with exactly ``num_scenes`` scenes required by the schema itself."""
    return create_model(
        "PlanDraft",
        __base__=PlanDraft,
        __doc__=PlanDraft.__doc__,
        scenes=(
            list[SceneDraft],
            Field(
                min_length=num_scenes,
                max_length=num_scenes,
                description=f"Exactly {num_scenes} scenes in story order.",
            ),
        ),
    )


def _durations(drafts: list[SceneDraft], target_duration_s: float | None) -> list[float]:
    """The model's durations scaled to the target when they are all set, else an even split."""
    if target_duration_s is None:
        return [d.duration_s for d in drafts]
    given = [d.duration_s for d in drafts]
    if all(g > 0 for g in given):
        scale = target_duration_s / sum(given)
        out = [round(g * scale, 2) for g in given]
    else:
        out = [round(target_duration_s / len(drafts), 2)] * len(drafts)
    out[-1] = round(target_duration_s - sum(out[:-1]), 2)
    return out


def _to_plan(draft: PlanDraft, concept: str, target_duration_s: float | None) -> StoryboardPlan:
    scenes = [
        ScenePlan(
            scene_number=number,
            prompt=scene.prompt.strip(),
            beat=scene.beat.strip(),
            duration_s=max(0.0, duration),
            character_ids=list(dict.fromkeys(scene.character_ids)),
            subject=scene.subject.strip(),
        )
        for number, (scene, duration) in enumerate(
            zip(draft.scenes, _durations(draft.scenes, target_duration_s), strict=False), start=1
        )
    ]
    return StoryboardPlan(
        concept=concept,
        target_duration_s=target_duration_s,
        scenes=scenes,
        markers=draft.markers,
        source="llm",
    )


def _user_message(concept: str, target_duration_s: float | None, num_scenes: int) -> str:
    length = f", {target_duration_s:g} seconds of video in all" if target_duration_s else ""
    return user_message(
        f"Plan a storyboard of exactly {num_scenes} scenes for this concept{length}. "
        "Call the PlanDraft tool with the scenes and the consistency markers.",
        {"concept": concept, "target_duration_s": target_duration_s, "num_scenes": num_scenes},
    )


async def plan(
    concept: str,
    target_duration_s: float | None = None,
    num_scenes: int | None = None,
    *,
    llm: BaseChatModel | None,
) -> tuple[StoryboardPlan, list[AgentEvent]]:
    """Plan the storyboard; ``num_scenes`` wins over the count the duration implies.

    Raises ValueError for an empty concept or out-of-range numbers, ``LLMTransientError``
    when the endpoint cannot answer now; falls back to the heuristic planner (source
    "fallback") when the LLM's replies do not parse.
    """
    check_plan_inputs(concept, target_duration_s, num_scenes)
    concept = concept.strip()
    if llm is None:
        return plan_heuristic(concept, target_duration_s, num_scenes), []

    n = num_scenes or scenes_for_duration(target_duration_s)
    try:
        draft, events = await ask_structured(
            llm,
            plan_draft_schema(n),
            system=load_system_prompt("planner"),
            user=_user_message(concept, target_duration_s, n),
            agent=AGENT,
        )
    except (LLMParseError, LLMRequestError) as error:
        fallback = plan_heuristic(concept, target_duration_s, n).model_copy(update={"source": "fallback"})
        return fallback, [
            *error.events,
            AgentEvent(
                agent=AGENT,
                kind="fallback",
                detail=f"heuristic planner used: {error}",
            ),
        ]
    return _to_plan(draft, concept, target_duration_s), events
