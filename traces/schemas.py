"""What a storyboard run records: attempts, scene results and the run summary.

The graph builds these, the trace writer stores them as JSON, the reader loads them back
into the same classes and the API serves them: one model from node to HTTP response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from imageforge.agents.schemas import AgentEvent, ConsistencyMarkers, EnhancementResult, StoryboardPlan
from imageforge.agents.usage import UsageTotals
from imageforge.scoring.schemas import EnsembleReport, VariationScore
from imageforge.tools.schemas import ReferenceImage


class Attempt(BaseModel):
    """One generate-score-validate pass of a scene with one reference."""

    attempt: int = Field(ge=1)
    reference: ReferenceImage | None = Field(None, description="The reference the strategy chose, if any.")
    anchor: ReferenceImage | None = Field(
        None, description="The storyboard's anchor when it conditioned the attempt as a second reference."
    )
    seeds: list[int]
    variations: list[VariationScore] = Field(description="Every variation, ranked within the attempt.")
    best_index: int = Field(ge=1, description="1-based variation index of the attempt's best image.")
    quality: float = Field(description="The best variation's weighted overall score, 0-100.")
    consistency: float | None = Field(None, description="The best variation's similarity to the references, 0-100.")
    passed: bool
    reason: str = Field(description="Seed-003 style: 'Passed' or 'Failed validation - Quality: 25.0/30, ...'.")
    failure_reasons: list[str] = Field(default_factory=list)
    generator: str = ""
    generator_model: str = ""
    cache_hits: int = 0
    size: str = Field("", description="The frame asked of the generator, 'WIDTHxHEIGHT'.")
    size_source: str = Field("", description="Why that size: the model's native area or the resolution setting.")
    timings_s: dict[str, float] = Field(default_factory=dict, description="generate, score, ... in seconds")
    warnings: list[str] = Field(default_factory=list)

    @property
    def best(self) -> VariationScore:
        return next(v for v in self.variations if v.index == self.best_index)


SceneStatus = Literal["passed", "accepted_with_warning", "failed"]


class SceneResult(BaseModel):
    """A finished scene: the winner, every attempt, and why."""

    scene_number: int
    status: SceneStatus
    enhanced_prompt: str
    negative_prompt: str = ""
    winner: VariationScore | None = Field(None, description="None only when a strict scene failed.")
    winner_path: str | None = Field(None, description="The winner's image_<i>.png in the scene folder.")
    winner_attempt: int | None = None
    attempts: list[Attempt]
    reason: str = Field("", description="Why the winner won, in words (selected_best.txt).")
    ensemble: EnsembleReport
    warnings: list[str] = Field(default_factory=list)
    error: dict[str, Any] | None = Field(None, description="Seed-003 error details when a strict scene failed.")
    timings_s: dict[str, float] = Field(default_factory=dict)


RunStatus = Literal["running", "completed", "failed", "cancelled"]


class RunSummary(BaseModel):
    """summary.json at the top of a generation's trace folder."""

    generation_id: str
    status: RunStatus
    concept: str
    plan: StoryboardPlan | None = None
    markers: ConsistencyMarkers | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    backends: dict[str, Any] = Field(default_factory=dict, description="What served each role, with model ids.")
    scenes: list[SceneResult] = Field(default_factory=list)
    enhancements: list[EnhancementResult] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    plan_events: list[AgentEvent] = Field(
        default_factory=list, description="The planner's LLM calls, retries and fallbacks."
    )
    llm_usage: UsageTotals = Field(
        default_factory=UsageTotals, description="Tokens, requests and latency of the run's LLM calls."
    )
    started_at: datetime
    finished_at: datetime | None = None
    elapsed_s: float | None = None
    error: str | None = None


def llm_events(summary: RunSummary) -> list[AgentEvent]:
    """Every agent event of a run: the planner's, then each scene's iterations in order."""
    return [
        *summary.plan_events,
        *(event for result in summary.enhancements for iteration in result.iterations for event in iteration.events),
    ]
