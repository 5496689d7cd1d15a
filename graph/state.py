"""Graph state: the storyboard graph, the per-scene enhancement loop and the scene pipeline.

Each graph has a narrow input, a wider internal state and (for the storyboard) a narrow
output. Reducers live in the annotations: scenes enhance concurrently and merge their
results by scene number; attempts and iterations accumulate.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from imageforge.agents.schemas import (
    AgentEvent,
    ConsistencyMarkers,
    EnhancedPrompt,
    EnhancementResult,
    Iteration,
    ScenePlan,
    StoryboardPlan,
)
from imageforge.scoring.schemas import VariationScore
from imageforge.tools.references import RankedReference
from imageforge.tools.schemas import ReferenceImage, StoredImage
from imageforge.traces.schemas import Attempt, SceneResult

K = TypeVar("K")
V = TypeVar("V")


def merge(left: dict[K, V] | None, right: dict[K, V] | None) -> dict[K, V]:
    """Reducer for results keyed by scene number: concurrent writers never collide."""
    return {**(left or {}), **(right or {})}


# Storyboard ------------------------------------------------------------------------------
@dataclass(kw_only=True)
class InputState:
    concept: str = field(metadata={"description": "What the storyboard is about."})
    generation_id: str | None = field(
        default=None,
        metadata={
            "description": "Names the trace folder (and, for the service, the checkpoint thread); made when absent."
        },
    )
    target_duration_s: float | None = field(
        default=None, metadata={"description": "Video length; sets the scene count."}
    )
    num_scenes: int | None = field(default=None, metadata={"description": "Scene count, overriding the duration."})
    scenes: list[str] | None = field(
        default=None, metadata={"description": "Explicit scene prompts instead of the planner."}
    )
    reference_path: str | None = field(default=None, metadata={"description": "A user image: scene 1's reference."})
    plan: StoryboardPlan | None = field(default=None, metadata={"description": "An explicit plan (skips the planner)."})
    reuse_from: str | None = field(
        default=None, metadata={"description": "An earlier generation (same trace root) whose first scenes are kept."}
    )
    keep_scenes: int = field(default=0, metadata={"description": "How many leading scenes of `reuse_from` to keep."})
    character_references: dict[str, list[ReferenceImage]] = field(
        default_factory=dict,
        metadata={"description": "Character id -> its master/core/gallery references; scenes naming it use them."},
    )
    characters: list[str] = field(
        default_factory=list, metadata={"description": "Character ids every scene uses, planned or explicit."}
    )
    scene_characters: list[list[str]] | None = field(
        default=None, metadata={"description": "Character ids per explicit scene, in the order of `scenes`."}
    )


@dataclass(kw_only=True)
class State(InputState):
    base_seed: int = 0
    started_at: str | None = None
    enhancements: Annotated[dict[int, EnhancementResult], merge] = field(default_factory=dict)
    results: Annotated[dict[int, SceneResult], merge] = field(default_factory=dict)
    anchor: ReferenceImage | None = field(default=None, metadata={"description": "The user image, when given."})
    warnings: Annotated[list[str], operator.add] = field(default_factory=list)
    plan_events: list[AgentEvent] = field(
        default_factory=list, metadata={"description": "The planner's LLM calls, retries and fallbacks."}
    )
    error: str | None = None


@dataclass(kw_only=True)
class OutputState:
    generation_id: str | None = None
    plan: StoryboardPlan | None = None
    results: dict[int, SceneResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


# One scene's whole way: enhance, wait for the previous winner, generate --------------------
@dataclass(kw_only=True)
class SceneTurnInput:
    generation_id: str
    scene: ScenePlan
    markers: ConsistencyMarkers
    base_seed: int
    anchor: ReferenceImage | None = field(default=None, metadata={"description": "The user image, when given."})
    characters: list[ReferenceImage] = field(
        default_factory=list, metadata={"description": "References of the characters this scene names."}
    )
    kept: dict[int, SceneResult] = field(
        default_factory=dict, metadata={"description": "Scenes kept from an earlier generation (derive)."}
    )
    total: int = 0


@dataclass(kw_only=True)
class SceneTurnState(SceneTurnInput):
    enhancements: Annotated[dict[int, EnhancementResult], merge] = field(default_factory=dict)
    enhancement: EnhancementResult | None = None
    candidates: list[ReferenceImage] = field(default_factory=list)
    chain_scene: int | None = None
    blocked: str | None = field(default=None, metadata={"description": "Why this scene did not generate."})
    results: Annotated[dict[int, SceneResult], merge] = field(default_factory=dict)
    warnings: Annotated[list[str], operator.add] = field(default_factory=list)


@dataclass(kw_only=True)
class SceneTurnOutput:
    enhancements: Annotated[dict[int, EnhancementResult], merge] = field(default_factory=dict)
    results: Annotated[dict[int, SceneResult], merge] = field(default_factory=dict)
    warnings: Annotated[list[str], operator.add] = field(default_factory=list)


# Enhancement loop (one scene) --------------------------------------------------------------
@dataclass(kw_only=True)
class EnhanceInput:
    generation_id: str
    scene: ScenePlan
    markers: ConsistencyMarkers


@dataclass(kw_only=True)
class EnhanceState(EnhanceInput):
    iterations: Annotated[list[Iteration], operator.add] = field(default_factory=list)
    draft: EnhancedPrompt | None = None
    draft_events: list[AgentEvent] = field(default_factory=list)
    draft_started: float = 0.0
    enhancements: Annotated[dict[int, EnhancementResult], merge] = field(default_factory=dict)


@dataclass(kw_only=True)
class EnhanceOutput:
    enhancements: Annotated[dict[int, EnhancementResult], merge] = field(default_factory=dict)


# Scene pipeline ---------------------------------------------------------------------------
@dataclass(kw_only=True)
class SceneInput:
    generation_id: str
    scene: ScenePlan
    enhancement: EnhancementResult
    base_seed: int
    candidates: list[ReferenceImage] = field(default_factory=list)
    anchor: ReferenceImage | None = None
    chain_scene: int | None = None


@dataclass(kw_only=True)
class SceneState(SceneInput):
    ranking: list[RankedReference] = field(default_factory=list)
    schedule: list[ReferenceImage | None] = field(default_factory=list)
    attempts: Annotated[list[Attempt], operator.add] = field(default_factory=list)
    images: list[StoredImage] = field(default_factory=list)
    generation: dict = field(default_factory=dict)
    scored: list[VariationScore] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    result: SceneResult | None = None
    results: Annotated[dict[int, SceneResult], merge] = field(default_factory=dict)


@dataclass(kw_only=True)
class SceneOutput:
    results: Annotated[dict[int, SceneResult], merge] = field(default_factory=dict)
