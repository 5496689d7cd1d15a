"""Per-run configuration: the validated request settings and the backend choices.

One typed object for the whole run, passed as LangGraph's run context
(``graph.ainvoke(input, context=Context(...))``) and read by nodes through
``runtime.context``. Deployment values (database URL, secrets) stay in ``api.settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    resolution: int = Field(512, ge=64, le=2048, description="Long edge of the image in pixels.")

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries


LLMBackend = Literal["auto", "heuristic", "openai"]
GeneratorBackend = Literal["auto", "sketch", "diffusers", "openai"]


class BackendSettings(BaseModel):
    """Which implementation serves each role. ``auto`` never downloads: it picks a real backend
    only when it is configured (an LLM endpoint) or already on disk (model weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    llm: LLMBackend = "auto"
    llm_model: str = Field("gpt-4o-mini", description="Chat model name at the OpenAI-compatible endpoint.")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, ...).")
    llm_timeout_s: float = Field(60.0, gt=0)
    llm_max_retries: int = Field(2, ge=0, le=10, description="Client-side retries with backoff per LLM call.")
    generator: GeneratorBackend = "auto"
    generator_model: str | None = Field(None, description="Hub id or local path for the diffusers/OpenAI generator.")
    scorers: tuple[str, ...] = Field(("auto",), description="Scorer names, or 'auto' / 'offline'.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:1', 'mps'.")
    # Real generator options (diffusers); None keeps the model family's defaults.
    steps: int | None = Field(None, ge=1, le=200, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance scale.")
    strength: float = Field(
        0.6, gt=0, le=1, description="Image-to-image strength when a reference conditions the image."
    )
    ip_adapter: str | None = Field(None, description="IP-Adapter weights, 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS'.")
    attention_slicing: bool = Field(False, description="Lower peak memory at some speed cost.")
    vae_slicing: bool = Field(False, description="Decode the batch one image at a time.")
    cpu_offload: bool = Field(False, description="Keep idle sub-models on the CPU (GPU memory saver).")
    cache_dir: str | None = Field(None, description="Generation cache folder (seed 002); None disables it.")
    # Scorer models; None uses each scorer's published default.
    pickscore_model: str | None = Field(None, description="PickScore model (hub id or path).")
    clip_model: str | None = Field(None, description="CLIP for CLIP-score, the aesthetic head and consistency.")
    vqa_model: str | None = Field(None, description="Vision-language model for VQAScore.")
    consistency: Literal["auto", "clip", "dinov2", "histogram"] = Field(
        "auto", description="Consistency scorer: embedding cosine (CLIP or DINOv2) or the offline stand-in."
    )
    consistency_model: str | None = Field(None, description="Model for the consistency scorer.")
    scorer_batch_size: int = Field(8, ge=1, le=256, description="Images per scorer forward pass.")


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
