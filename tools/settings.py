"""What the image generators need; owned here, composed by ``graph.context``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GeneratorBackend", "GeneratorSettings"]

GeneratorBackend = Literal["auto", "sketch", "diffusers", "openai"]


class GeneratorSettings(BaseModel):
    """Which generator makes the images and how. ``auto`` never downloads: it picks diffusers
    only when the weights are already on disk, the offline sketch otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: GeneratorBackend = Field("auto", description="auto, sketch, diffusers or openai.")
    model: str | None = Field(None, description="Hub id or local path for the diffusers/OpenAI generator.")
    # Diffusers options; None keeps the model family's defaults.
    steps: int | None = Field(None, ge=1, le=200, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance scale.")
    strength: float = Field(0.6, gt=0, le=1, description="Image-to-image strength when a reference conditions the image.")
    ip_adapter: str | None = Field(None, description="IP-Adapter weights, 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS'.")
    attention_slicing: bool = Field(False, description="Lower peak memory at some speed cost.")
    vae_slicing: bool = Field(False, description="Decode the batch one image at a time.")
    cpu_offload: bool = Field(False, description="Keep idle sub-models on the CPU (GPU memory saver).")
    cache_dir: str | None = Field(None, description="Generation cache folder (seed 002); None disables it.")
