"""Generations: a storyboard request, its stored job, its scenes with their attempts and
variations, and the status document (seed 004) that shows them.

Request bodies reuse the graph's ``GenerationSettings`` so the API and the CLI enforce the
same ranges. ``JobSpec`` is what ``Generation.request`` holds: everything a worker needs to
start or resume the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlmodel import JSON, Column, Field, SQLModel, UniqueConstraint

from imageforge.agents.heuristics import MAX_SCENES
from imageforge.agents.schemas import StoryboardPlan
from imageforge.agents.settings import LLMBackend
from imageforge.api.models import utcnow
from imageforge.graph.context import BackendSettings, GenerationSettings
from imageforge.tools.schemas import ReferenceImage
from imageforge.tools.settings import GeneratorBackend

__all__ = [
    "TERMINAL_STATUSES",
    "AttemptPublic",
    "AttemptRecord",
    "BackendChoice",
    "CancelPublic",
    "Generation",
    "GenerationAccepted",
    "GenerationBase",
    "GenerationCreate",
    "GenerationOptions",
    "GenerationPublic",
    "GenerationStatus",
    "GenerationStatusDocument",
    "GenerationsPublic",
    "JobKind",
    "JobSpec",
    "Scene",
    "ScenePublic",
    "SmartImageJob",
    "StoryboardPlanPublic",
    "Variation",
    "VariationPublic",
]

GenerationStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


# Generation requests -----------------------------------------------------------------------
class BackendChoice(BaseModel):
    """Backends a request may choose. Endpoints, model paths and devices come only from the
    server's settings, so a request can never make the server fetch a URL or open a path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm: LLMBackend | None = None
    generator: GeneratorBackend | None = None
    scorers: list[Literal["auto", "offline"]] | None = Field(None, min_length=1, max_length=2)


class GenerationOptions(GenerationSettings):
    """The run's settings plus the backend choice, as the ``settings`` object of a request.

    Strict, like every request body: ``"4"`` and ``true`` are not numbers; a caller that sends
    them has a bug that lax coercion would hide (an integer may still stand for a float).
    """

    model_config = ConfigDict(strict=True)

    backends: BackendChoice | None = None

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(**self.model_dump(exclude={"backends"}))


CharacterRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
"""A character id (``api.models.character``) named by a generate request."""


class GenerationCreate(BaseModel):
    """POST /api/generate: a concept, its length (or scene count, or explicit scenes) and settings."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=2000, description="The storyboard's concept.")
    target_duration: float | None = Field(
        None, gt=0, le=600, description="Video length in seconds; sets the scene count."
    )
    num_scenes: int | None = Field(None, ge=1, le=MAX_SCENES, description="Scene count, overriding the duration.")
    scenes: list[str] | None = Field(
        None, min_length=1, max_length=MAX_SCENES, description="Explicit scene prompts instead of the planner."
    )
    settings: GenerationOptions = Field(default_factory=GenerationOptions)
    preset: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="A saved preset's name: its settings are the base, `settings` overrides them.",
    )
    characters: list[CharacterRef] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Character ids whose references join every scene's reference candidates.",
    )
    scene_characters: list[list[CharacterRef]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SCENES,
        description="Per explicit scene (parallel to `scenes`), the character ids it shows.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("`prompt` must contain text, got only whitespace.")
        return stripped

    @field_validator("scenes")
    @classmethod
    def _scenes_have_text(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [scene.strip() for scene in value]
        for index, scene in enumerate(cleaned):
            if not scene:
                raise ValueError(f"`scenes[{index}]` must contain text.")
            if len(scene) > 2000:
                raise ValueError(f"`scenes[{index}]` must be at most 2000 characters, got {len(scene)}.")
        return cleaned

    @model_validator(mode="after")
    def _scene_count_agrees(self) -> GenerationCreate:
        if self.scenes is not None and self.num_scenes is not None and self.num_scenes != len(self.scenes):
            raise ValueError(
                f"`num_scenes` ({self.num_scenes}) disagrees with the {len(self.scenes)} explicit `scenes`."
            )
        if self.scene_characters is not None and len(self.scene_characters) != len(self.scenes or []):
            raise ValueError(
                f"`scene_characters` needs one list per explicit scene: {len(self.scene_characters)} lists "
                f"for {len(self.scenes or [])} `scenes`."
            )
        if any(len(ids) > 10 for ids in self.scene_characters or []):
            raise ValueError("`scene_characters` allows at most 10 characters per scene.")
        return self


class GenerationAccepted(BaseModel):
    generation_id: str
    status: GenerationStatus = "queued"
    status_url: str
    events_url: str


JobKind = Literal["storyboard", "smart_image"]
"""What a job does after its storyboard run: nothing more, or a smart image's extra steps
(``api.services.smart_images``). Every other kind of generation (batch item, upload,
/v1/images, the assistant's actions) is an ordinary storyboard with its own fields set."""


class SmartImageJob(BaseModel):
    """A smart image's inputs beyond its one-scene storyboard, stored in the job so whichever
    process runs it can write ``smart_image.json`` and add the winner to the gallery."""

    model_config = ConfigDict(extra="ignore")

    user_id: int = PydanticField(description="The owner: the gallery image is added to their character only.")
    character_id: str
    character_name: str
    prompt: str
    style: str
    tags: list[str] = PydanticField(default_factory=list)
    body: dict[str, Any] = PydanticField(default_factory=dict, description="Seed 003's request as sent.")


class JobSpec(BaseModel):
    """A generation's stored request (``Generation.request``): everything needed to start (or
    resume) its run, in JSON, so any process can run it."""

    model_config = ConfigDict(extra="ignore")

    kind: JobKind = "storyboard"
    smart: SmartImageJob | None = PydanticField(None, description="The smart image's inputs (kind smart_image).")
    concept: str
    target_duration_s: float | None = None
    num_scenes: int | None = None
    scenes: list[str] | None = None
    reference_path: str | None = None
    settings: GenerationSettings
    backends: BackendSettings
    preset: str | None = None
    characters: list[str] = PydanticField(default_factory=list, description="Character ids shown in every scene.")
    scene_characters: list[list[str]] | None = PydanticField(None, description="Character ids per explicit scene.")
    character_references: dict[str, list[ReferenceImage]] = PydanticField(
        default_factory=dict, description="Character id -> its references, resolved when the request was accepted."
    )
    plan: StoryboardPlan | None = PydanticField(
        None, description="An explicit plan (the assistant's refine); skips the planner."
    )
    reuse_from: str | None = PydanticField(None, description="Generation whose first `keep_scenes` scenes are kept.")
    keep_scenes: int = PydanticField(0, ge=0, description="How many leading scenes of `reuse_from` to keep.")


# Generations (tables) ----------------------------------------------------------------------
class GenerationBase(SQLModel):
    concept: str = Field(max_length=2000)
    status: str = Field(default="queued", index=True, max_length=16)
    progress: int = Field(default=0, ge=0, le=100)
    current_step: str = Field(default="queued", max_length=200)


class Generation(GenerationBase, table=True):
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    plan: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    backends: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    cancel_requested: bool = False
    runs: int = Field(default=0, description="How many times a worker started (or resumed) it.")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elapsed_s: float | None = None


class Scene(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("generation_id", "scene_number"),)

    id: int | None = Field(default=None, primary_key=True)
    generation_id: str = Field(foreign_key="generation.id", index=True, max_length=64)
    scene_number: int
    status: str = Field(max_length=32)
    enhanced_prompt: str
    negative_prompt: str = ""
    winner_path: str | None = Field(default=None, description="Relative to the generation's trace folder.")
    winner_attempt: int | None = None
    quality_score: float | None = None
    consistency_score: float | None = None
    components: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reason: str = ""
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AttemptRecord(SQLModel, table=True):
    """One generate-score-validate pass of a scene (``traces.schemas.Attempt`` in the database)."""

    __tablename__ = "attempt"

    id: int | None = Field(default=None, primary_key=True)
    scene_id: int = Field(foreign_key="scene.id", index=True)
    attempt: int
    reference_id: str | None = None
    reference_kind: str | None = None
    reference_path: str | None = None
    seeds: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    best_index: int
    quality: float
    consistency: float | None = None
    passed: bool
    reason: str = ""
    failure_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    generator: str = ""
    generator_model: str = ""
    cache_hits: int = 0
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    warnings: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Variation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempt.id", index=True)
    index: int
    seed: int
    path: str = Field(description="Relative to the generation's trace folder.")
    overall: float
    consistency: float | None = None
    components: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rank: int = 0


# Generations (API) -------------------------------------------------------------------------
class GenerationPublic(GenerationBase):
    id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    status_url: str = ""


class GenerationsPublic(SQLModel):
    data: list[GenerationPublic]
    count: int


class VariationPublic(BaseModel):
    index: int
    seed: int
    overall: float
    consistency: float | None = None
    components: dict[str, float]
    rank: int
    image_url: str


class AttemptPublic(BaseModel):
    attempt: int
    reference_id: str | None = None
    reference_kind: str | None = None
    quality_score: float
    consistency_score: float | None = None
    passed: bool
    reason: str
    best_index: int
    seeds: list[int]
    generator: str
    generator_model: str
    variations: list[VariationPublic]


class ScenePublic(BaseModel):
    scene_number: int
    status: str = Field(description="pending, running, passed, accepted_with_warning or failed.")
    prompt: str | None = Field(None, description="The planned prompt, before enhancement.")
    enhanced_prompt: str | None = None
    reference_image_url: str | None = Field(None, description="The scene's winning image, the next scene's reference.")
    quality_score: float | None = None
    consistency_score: float | None = None
    component_scores: dict[str, float] = Field(default_factory=dict)
    attempts: list[AttemptPublic] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    error: dict[str, Any] | None = None


class StoryboardPlanPublic(BaseModel):
    advanced_image_generation_used: bool = True
    advanced_image_settings: dict[str, Any]
    settings: dict[str, Any]
    backends: dict[str, Any] = Field(default_factory=dict)
    concept: str
    target_duration: float | None = None
    consistency_markers: dict[str, Any] | None = None
    scenes: list[ScenePublic]


class GenerationStatusDocument(BaseModel):
    """Seed 004's status response, with the scene details the service records."""

    generation_id: str
    status: GenerationStatus
    progress: int
    current_step: str
    advanced_image_generation_used: bool = True
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elapsed_s: float | None = None
    error: str | None = None
    cancel_requested: bool = False
    warnings: list[str] = Field(default_factory=list)
    storyboard_plan: StoryboardPlanPublic
    links: dict[str, str]


class CancelPublic(BaseModel):
    generation_id: str
    status: GenerationStatus
    cancel_requested: bool
    message: str
