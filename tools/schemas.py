"""Data exchanged with image generators and the reference strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

ReferenceKind = Literal["user", "master", "core", "generated"]
"""Seed 003's reference kinds. A user-supplied image counts as the master reference."""


class ImageSize(BaseModel):
    model_config = ConfigDict(frozen=True)

    width: int = Field(ge=16, le=4096)
    height: int = Field(ge=16, le=4096)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


class ReferenceImage(BaseModel):
    """An image a generation may be conditioned on, with what the ranking needs to know."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable id, e.g. 'user', 'scene_2:attempt_1:image_3'.")
    kind: ReferenceKind
    path: str = Field(description="Where the image lies on disk.")
    scene_number: int | None = Field(None, description="The scene that produced it, if generated.")
    quality_score: float | None = None
    consistency_score: float | None = None
    shot_type: str = ""
    camera_angle: str = ""
    keywords: list[str] = Field(default_factory=list)

    def open(self) -> Image.Image:
        from imageforge.tools.storage import load_image

        return load_image(self.path)


class GeneratedImage(BaseModel):
    """One variation as the generator returned it. ``image`` is dropped before it enters state."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image = Field(exclude=True)
    seed: int
    metadata: dict[str, Any] = Field(default_factory=dict)


class GenerationOutput(BaseModel):
    """A generator's answer for one batch: the images in seed order and how they were made."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    images: list[GeneratedImage]
    backend: str
    model: str
    elapsed_s: float
    cache_hits: int = 0
    warnings: list[str] = Field(default_factory=list)


class StoredImage(BaseModel):
    """A variation after it was written to the trace: what graph state carries."""

    index: int = Field(ge=1, description="1-based variation number within its attempt.")
    seed: int
    path: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def file(self) -> Path:
        return Path(self.path)
