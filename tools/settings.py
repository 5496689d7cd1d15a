"""What the image generators need; owned here, composed by ``graph.context``."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FACTORY_PATH_PATTERN", "GeneratorBackend", "GeneratorSettings"]

GeneratorBackend = Literal["auto", "sketch", "diffusers", "openai"]
"""The built-in backends by name: what a request or a CLI flag may choose."""

FACTORY_PATH_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
"""``package.module:attribute``: a user-supplied generator factory (see ``GeneratorSettings.backend``)."""


class GeneratorSettings(BaseModel):
    """Which generator makes the images and how. ``auto`` never downloads: it picks diffusers
    only when the weights are already on disk, the offline sketch otherwise.

    ``backend`` is a built-in name or the import path ``"package.module:factory"`` of a
    user-supplied ``tools.factory.GeneratorFactory``: a callable ``(GeneratorSettings, device)
    -> (ImageGenerator, note)`` that receives these settings (so ``model`` and the rest reach
    it) and returns the generator with one line saying what runs. It is imported when the
    generator is built (``tools.factory.build_generator``), which raises a ``ValueError``
    naming ``generator.backend`` when the path does not import. In the service's environment:
    ``IMAGEFORGE_GENERATOR__BACKEND=mypackage.generators:build``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(
        "auto",
        description="auto, sketch, diffusers or openai; or 'package.module:factory', a user-supplied factory.",
    )
    model: str | None = Field(None, description="Hub id or local path for the diffusers/OpenAI generator.")
    # Diffusers options; None keeps the model family's defaults.
    steps: int | None = Field(None, ge=1, le=200, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance scale.")
    strength: float = Field(
        0.6, gt=0, le=1, description="Image-to-image strength when a reference conditions the image."
    )
    ip_adapter: str | None = Field(None, description="IP-Adapter weights, 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS'.")
    ip_adapter_image_encoder: str | None = Field(
        None,
        description=(
            "IP-Adapter image encoder folder: inside the adapter's repository ('models/image_encoder' for the SDXL "
            "ViT-H adapters), 'REPO_OR_FOLDER:SUBFOLDER' or a local path; none: SUBFOLDER/image_encoder."
        ),
    )
    attention_slicing: bool = Field(False, description="Lower peak memory at some speed cost.")
    vae_slicing: bool = Field(False, description="Decode the batch one image at a time.")
    cpu_offload: bool = Field(False, description="Keep idle sub-models on the CPU (GPU memory saver).")
    cache_dir: str | None = Field(None, description="Generation cache folder (seed 002); None disables it.")

    @field_validator("backend")
    @classmethod
    def _name_or_factory_path(cls, value: str) -> str:
        value = value.strip()
        if value in get_args(GeneratorBackend) or FACTORY_PATH_PATTERN.fullmatch(value):
            return value
        raise ValueError(
            f"`generator.backend` must be one of {list(get_args(GeneratorBackend))} or a factory's import path "
            f"'package.module:factory', got {value!r}"
        )
