"""The agents' data model: what the planner, cinematographer and prompt engineer exchange.

These pydantic models are the structured-output schemas the LLM agents are asked for *and*
the values the heuristic agents return, so the graph never knows which kind answered.
They flow through graph state and into the trace files unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Weights of the prompt engineer's five dimensions in the overall score. Cinematography
#: weighs most because it is what the cinematographer pass exists to add; the sum is 1.
DIMENSION_WEIGHTS: dict[str, float] = {
    "completeness": 0.20,
    "specificity": 0.20,
    "professionalism": 0.15,
    "cinematography": 0.30,
    "brand_alignment": 0.15,
}

AgentSource = Literal["llm", "heuristic", "fallback"]
"""Who produced an answer: the configured LLM, the offline heuristic agent, or the heuristic
agent standing in after the LLM failed (the trace records why)."""


class ConsistencyMarkers(BaseModel):
    """What every scene of one storyboard must share so the images read as one film."""

    characters: list[str] = Field(
        default_factory=list, description="Recurring people or products, described concretely."
    )
    palette: list[str] = Field(default_factory=list, description="Named colours shared by all scenes.")
    setting: str = Field("", description="Where the story takes place.")
    style: str = Field("", description="Visual style, e.g. 'warm editorial photography'.")
    brand_keywords: list[str] = Field(default_factory=list, description="Words the brand wants associated with it.")


class ScenePlan(BaseModel):
    """One planned scene: its narrative beat and the prompt the enhancement loop starts from."""

    scene_number: int = Field(ge=1)
    prompt: str = Field(min_length=1, description="The scene's image prompt before enhancement.")
    beat: str = Field("", description="Narrative role: hook, build, reveal, payoff, call to action.")
    duration_s: float = Field(0.0, ge=0, description="Seconds of the final video this scene covers.")
    character_ids: list[str] = Field(
        default_factory=list, description="Characters whose references join this scene's candidates."
    )
    subject: str = Field(
        "",
        description=(
            "What the scene shows, in the concept's own words; every enhanced version must still name it. "
            "Empty: the prompt's leading noun phrase."
        ),
    )


class StoryboardPlan(BaseModel):
    """The planner's answer: scenes in order and the markers they share."""

    concept: str
    target_duration_s: float | None = None
    scenes: list[ScenePlan] = Field(min_length=1)
    markers: ConsistencyMarkers = Field(default_factory=ConsistencyMarkers)
    source: AgentSource = "heuristic"


class EnhancedPrompt(BaseModel):
    """The cinematographer's answer: the rewritten prompt plus the decisions it encodes.

    The structured fields are kept beside the prose so the sketch generator, the trace viewer
    and the next critique can read them without parsing the prompt again.
    """

    prompt: str = Field(min_length=1, description="The complete enhanced image prompt.")
    negative_prompt: str = Field("", description="What the image must not contain.")
    shot_type: str = Field(description="e.g. 'medium close-up', 'wide establishing shot'.")
    camera_angle: str = Field(description="e.g. 'eye-level', 'low angle', 'overhead'.")
    lens: str = Field(description="Focal length, e.g. '50mm'.")
    aperture: str = Field(description="e.g. 'f/1.8'.")
    lighting: str = Field(
        description="Light quality and direction, e.g. 'soft window light from the left at 45 degrees'."
    )
    color_temperature_k: int = Field(ge=1000, le=12000, description="Colour temperature in kelvin.")
    composition: str = Field(description="e.g. 'rule of thirds, subject on the left third'.")
    setting_detail: str = Field("", description="Concrete details of the location and props.")
    time_of_day: str = Field("", description="e.g. 'golden hour', 'night', 'morning'.")
    palette: list[str] = Field(default_factory=list, description="Named colours of the frame.")
    addressed: str = Field("", description="Which critique point this pass answered.")
    source: AgentSource = "heuristic"


class DimensionScores(BaseModel):
    """The prompt engineer's five dimensions, each 0-100."""

    completeness: float = Field(ge=0, le=100)
    specificity: float = Field(ge=0, le=100)
    professionalism: float = Field(ge=0, le=100)
    cinematography: float = Field(ge=0, le=100)
    brand_alignment: float = Field(ge=0, le=100)

    def weakest(self) -> str:
        """The dimension the next cinematographer pass should work on first."""
        values = self.model_dump()
        return min(values, key=lambda name: (values[name], -DIMENSION_WEIGHTS[name]))


def weighted_overall(scores: DimensionScores, weights: dict[str, float] = DIMENSION_WEIGHTS) -> float:
    """The weighted mean of the five dimensions, rounded to one decimal like the seed's examples."""
    total = sum(weights.values())
    value = sum(getattr(scores, name) * weight for name, weight in weights.items()) / total
    return round(value, 1)


class CritiqueDraft(BaseModel):
    """What an LLM prompt engineer is asked to return; the overall is computed, never trusted."""

    scores: DimensionScores
    critique: str = Field(description="What is missing or weak, addressed to the cinematographer.")
    suggestions: list[str] = Field(default_factory=list, description="Concrete edits, one per item.")
    subject_kept: bool = Field(
        True,
        description="False when the prompt no longer shows the scene's subject (the faithfulness item).",
    )


class SubjectCheck(BaseModel):
    """Whether a version of a scene's prompt still names the scene's subject."""

    subject: str = Field(description="The scene's subject as the check read it.")
    terms: list[str] = Field(default_factory=list, description="Key terms the prompt must contain.")
    missing: list[str] = Field(default_factory=list, description="Key terms the prompt lacks.")
    kept: bool = Field(description="False when the version lost the subject: it then fails the critique.")
    detail: str = Field("", description="The check's verdict in words, for the trace.")


class Critique(CritiqueDraft):
    """A scored critique. ``weights`` and ``overall`` are derived from ``scores``.

    A version that lost the scene's subject (``subject_kept`` false) fails whatever its
    other scores: its overall is 0, so it is never approved and never kept over a version
    that names the subject. The dimension scores stay as given, for the trace.
    """

    model_config = ConfigDict(validate_assignment=False)

    weights: dict[str, float] = Field(default_factory=lambda: dict(DIMENSION_WEIGHTS))
    overall: float = 0.0
    source: AgentSource = "heuristic"
    subject_check: SubjectCheck | None = Field(None, description="The term check, where one was run.")

    @model_validator(mode="after")
    def _derive_overall(self) -> Critique:
        if self.subject_check is not None and not self.subject_check.kept:
            self.subject_kept = False
        self.overall = weighted_overall(self.scores, self.weights) if self.subject_kept else 0.0
        return self


class LLMUsage(BaseModel):
    """What one request to the chat model cost, as the server reported it."""

    model: str = Field("", description="The model that answered (the server's name for it).")
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    latency_s: float = Field(0.0, ge=0, description="Wall time of the request, retries included.")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class AgentEvent(BaseModel):
    """What happened inside one agent call, kept for the trace: each LLM request (``llm_call``,
    with its usage), transient retries, a corrective re-ask, a refused request, a fallback."""

    agent: str
    kind: Literal["llm_call", "retry", "parse_retry", "refused", "fallback"]
    detail: str
    usage: LLMUsage | None = None


class Iteration(BaseModel):
    """One cinematographer + prompt-engineer round."""

    iteration: int = Field(ge=1)
    enhanced: EnhancedPrompt
    critique: Critique
    events: list[AgentEvent] = Field(default_factory=list)
    elapsed_s: float = 0.0


StopReason = Literal["approved", "max_iterations"]


class EnhancementResult(BaseModel):
    """The outcome of one scene's critique loop: every iteration and the one kept."""

    scene_number: int
    original_prompt: str
    iterations: list[Iteration] = Field(min_length=1)
    best_iteration: int = Field(ge=1, description="1-based index of the kept iteration.")
    approval_threshold: float
    stop_reason: StopReason

    @property
    def best(self) -> Iteration:
        return self.iterations[self.best_iteration - 1]

    @property
    def final(self) -> EnhancedPrompt:
        return self.best.enhanced

    @property
    def approved(self) -> bool:
        return self.best.critique.overall >= self.approval_threshold
