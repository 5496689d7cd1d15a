"""Per-run configuration: the validated request settings and the backend choices.

One typed object for the whole run, passed as LangGraph's run context
(``graph.ainvoke(input, context=Context(...))``) and read by nodes through
``runtime.context``. Each layer owns its backend settings (``agents.settings``,
``tools.settings``, ``scoring.settings``); they are composed here into ``BackendSettings``.
Deployment values (database URL, secrets) stay in ``api.core.config``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, field_validator
from pydantic_core import core_schema

from imageforge.agents.settings import LLMSettings
from imageforge.scoring.settings import ScorerSettings
from imageforge.tools.settings import GeneratorSettings
from imageforge.tools.sizes import DEFAULT_LONG_EDGE

if TYPE_CHECKING:
    from imageforge.graph.services import Services

AspectRatio = Literal["square", "16:9", "4:5", "21:9"]


class GenerationSettings(BaseModel):
    """What a request may tune, with the ranges the CLI and the API enforce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_variations: int = Field(4, ge=1, le=16, description="Images generated and scored per attempt.")
    max_enhancement_iterations: int = Field(4, ge=1, le=10, description="Cap on critique-loop rounds per scene.")
    approval_threshold: float = Field(
        85.0, ge=0, le=100, description="Prompt-engineer overall score that ends the loop."
    )
    quality_threshold: float = Field(
        30.0, ge=0, le=100, description="Minimum weighted image score a winner must reach."
    )
    consistency_threshold: float = Field(
        30.0,
        ge=0,
        le=100,
        description=(
            "Minimum similarity (0-100) to the scene's reference; 0 disables the check. Chained scenes differ in "
            "content by design, so the default only catches a scene whose look broke away from the storyboard."
        ),
    )
    max_retries: int = Field(
        2, ge=0, le=5, description="Extra attempts with the next reference after a failed validation."
    )
    strict: bool = Field(
        False, description="Fail the scene when every attempt misses; otherwise keep the best with a warning."
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Base seed; every variation seed derives from it.")
    aspect_ratio: AspectRatio = Field("square", description="Frame shape (seed 002 presets).")
    resolution: int | None = Field(
        None,
        ge=64,
        le=2048,
        description="Long edge of the image in pixels; unset: the model's native area at the aspect ratio "
        f"(a long edge of {DEFAULT_LONG_EDGE} px for a generator that states none).",
    )

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries


class BackendSettings(BaseModel):
    """Which implementation serves each role, composed from the settings each layer owns.

    ``llm`` and ``generator`` also accept a bare backend name (``"heuristic"``, ``"sketch"``),
    the form a request body or a CLI flag gives.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm: LLMSettings = Field(default_factory=LLMSettings, description="The agents' chat model.")
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings, description="The image generator.")
    scoring: ScorerSettings = Field(default_factory=ScorerSettings, description="The scorers and their models.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps': where models run.")

    @field_validator("llm", "generator", mode="before")
    @classmethod
    def _backend_name(cls, value: object) -> object:
        return {"backend": value} if isinstance(value, str) else value


@dataclass(kw_only=True)
class Context:
    """Run dependencies of one storyboard.

    ``services`` carries built backends (chat model, generator, scorers). Leave it ``None``
    to have them resolved from ``backends`` through the process-wide cache, so each model is
    loaded once per process; tests and benchmarks inject their own.
    """

    settings: GenerationSettings = field(
        default_factory=GenerationSettings, metadata={"description": "Validated request settings."}
    )
    backends: BackendSettings = field(
        default_factory=BackendSettings, metadata={"description": "Which backend serves each role."}
    )
    trace_root: str = field(
        default="output/reference_image_traces",
        metadata={"description": "Folder that holds one trace folder per generation."},
    )
    services: Services | None = field(
        default=None, metadata={"description": "Built backends; resolved from `backends` when omitted."}
    )
    should_stop: Callable[[], bool] | None = field(
        default=None, metadata={"description": "Polled at every node start; True cancels the run there."}
    )

    def __post_init__(self) -> None:
        # LangGraph builds the context from a JSON object (``langgraph dev``, Studio): Context(**dict).
        if not isinstance(self.settings, GenerationSettings):
            self.settings = GenerationSettings.model_validate(self.settings)
        if not isinstance(self.backends, BackendSettings):
            self.backends = BackendSettings.model_validate(self.backends)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The schema a caller sees (LangGraph Studio's context form): the JSON-able fields only;
        built backends and the stop callback are set in code."""
        return core_schema.no_info_after_validator_function(
            lambda fields: cls(**dict(fields)), handler.generate_schema(ContextFields)
        )


class ContextFields(BaseModel):
    """The JSON-able part of ``Context``: what LangGraph Studio or an API client may set."""

    settings: GenerationSettings = Field(default_factory=GenerationSettings, description="Validated request settings.")
    backends: BackendSettings = Field(default_factory=BackendSettings, description="Which backend serves each role.")
    trace_root: str = Field(
        "output/reference_image_traces", description="Folder that holds one trace folder per generation."
    )
