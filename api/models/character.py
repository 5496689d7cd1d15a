"""Characters (seed 003): tables for a character, its references and its gallery, and the
request and response shapes of the character API, including the smart-image endpoint.

A character has one master reference, any number of core references (turnaround angles)
and a gallery of generated images with their scores. All three kinds become reference
candidates of seed 003's ranking (``tools.references``): master +10, core +8, generated +5.
The smart-image shapes keep seed 003's camelCase field names and ranges.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import JSON, Column, Field, SQLModel

from imageforge.api.models import utcnow

__all__ = [
    "TURNAROUND_ANGLES",
    "Character",
    "CharacterCreate",
    "CharacterPublic",
    "CharacterReference",
    "CharacterUpdate",
    "CharactersPublic",
    "GalleryImage",
    "GalleryImagePublic",
    "GalleryPublic",
    "ReferencePublic",
    "ReferencesPublic",
    "SmartImageAttempt",
    "SmartImageData",
    "SmartImageError",
    "SmartImageErrorDetails",
    "SmartImageRequest",
    "SmartImageSuccess",
]

ReferenceRole = Literal["master", "core"]
TurnaroundAngle = Literal["front", "side", "back", "45-degree"]
TURNAROUND_ANGLES: tuple[str, ...] = ("front", "side", "back", "45-degree")
SmartStyle = Literal["character_turnaround", "character_production", "custom"]
SelectedReferenceType = Literal["master", "core_reference", "generated"]

_MAX_TAGS = 20
_MAX_TAG_LENGTH = 50


def clean_tags(value: list[str] | None, field: str = "tags") -> list[str] | None:
    """Tags stripped, lower-cased and de-duplicated in order; empty ones refused by name."""
    if value is None:
        return None
    cleaned: list[str] = []
    for index, tag in enumerate(value):
        text = " ".join(tag.split()).lower()
        if not text:
            raise ValueError(f"`{field}[{index}]` must contain text.")
        if len(text) > _MAX_TAG_LENGTH:
            raise ValueError(f"`{field}[{index}]` must be at most {_MAX_TAG_LENGTH} characters, got {len(text)}.")
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


def _has_text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"`{field}` must contain text, got only whitespace.")
    return stripped


# Tables ------------------------------------------------------------------------------------
class Character(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class CharacterReference(SQLModel, table=True):
    """A master or core (turnaround) reference image, stored under the character's folder."""

    __tablename__ = "character_reference"

    id: str = Field(primary_key=True, max_length=32)
    character_id: str = Field(foreign_key="character.id", index=True, max_length=32)
    kind: str = Field(max_length=16, description="master or core.")
    angle: str | None = Field(
        default=None, max_length=16, description="Turnaround angle: front, side, back, 45-degree."
    )
    shot_type: str = Field(default="", max_length=100)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    filename: str = Field(max_length=200, description="The file in the character's references folder.")
    width: int
    height: int
    created_at: datetime = Field(default_factory=utcnow)


class GalleryImage(SQLModel, table=True):
    """A smart image that passed validation, with its scores and where it came from."""

    __tablename__ = "character_gallery_image"

    id: str = Field(primary_key=True, max_length=32)
    character_id: str = Field(foreign_key="character.id", index=True, max_length=32)
    filename: str = Field(max_length=200, description="Seed 003's <name>_smart_<ms>.png; stored by id.")
    prompt: str = Field(max_length=2000)
    enhanced_prompt: str = ""
    style: str = Field(default="character_production", max_length=32)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    quality_score: float
    consistency_score: float | None = None
    reference_id: str | None = Field(default=None, max_length=64)
    reference_type: str | None = Field(default=None, max_length=16)
    generation_id: str = Field(max_length=64, description="The trace of the run that made it.")
    shot_type: str = Field(default="", max_length=32)
    camera_angle: str = Field(default="", max_length=16)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attempts: int = 1
    created_at: datetime = Field(default_factory=utcnow, index=True)


# Character CRUD shapes ---------------------------------------------------------------------
class CharacterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(
        "",
        max_length=2000,
        description="What the character looks like; joins every prompt as a consistency marker.",
    )
    tags: list[str] = Field(default_factory=list, max_length=_MAX_TAGS)

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str) -> str:
        return _has_text(value, "name")  # type: ignore[return-value]

    @field_validator("description")
    @classmethod
    def _strip_description(cls, value: str) -> str:
        return value.strip()

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        return clean_tags(value) or []


class CharacterUpdate(BaseModel):
    """Every field optional; only the fields sent change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    tags: list[str] | None = Field(None, max_length=_MAX_TAGS)

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        return _has_text(value, "name")

    @field_validator("description")
    @classmethod
    def _strip_description(cls, value: str | None) -> str | None:
        return None if value is None else value.strip()

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str] | None) -> list[str] | None:
        return clean_tags(value)


class ReferencePublic(BaseModel):
    id: str
    kind: ReferenceRole
    angle: TurnaroundAngle | None = None
    shot_type: str = ""
    keywords: list[str] = Field(default_factory=list)
    width: int
    height: int
    url: str = Field(description="The image, served to its owner by the API.")
    created_at: datetime


class ReferencesPublic(BaseModel):
    data: list[ReferencePublic]
    count: int


class GalleryImagePublic(BaseModel):
    id: str
    url: str
    filename: str
    prompt: str
    enhanced_prompt: str
    style: str
    tags: list[str]
    quality_score: float
    consistency_score: float | None = None
    reference_id: str | None = None
    reference_type: SelectedReferenceType | None = None
    generation_id: str
    trace_url: str = Field(description="The trace viewer page of the run that made the image.")
    attempts: int
    created_at: datetime


class GalleryPublic(BaseModel):
    data: list[GalleryImagePublic]
    count: int


class CharacterPublic(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    master: ReferencePublic | None = None
    core_references: list[ReferencePublic] = Field(default_factory=list)
    gallery: list[GalleryImagePublic] = Field(default_factory=list, description="Newest first.")
    gallery_count: int = 0
    created_at: datetime
    updated_at: datetime


class CharactersPublic(BaseModel):
    data: list[CharacterPublic]
    count: int


# Smart image (seed 003) --------------------------------------------------------------------
class SmartImageRequest(BaseModel):
    """Seed 003's request body, camelCase, with its ranges; ``numVariations`` and ``seed`` are
    ImageForge's additions (images scored per attempt; reproducible runs)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=2000, description="The image you want.")
    characterName: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Overrides the character's name in the prompt.",
    )
    maxRetries: int = Field(3, ge=1, le=5, description="Maximum generation attempts (1-5).")
    qualityThreshold: float = Field(70, ge=50, le=100, description="Minimum quality score (50-100).")
    consistencyThreshold: float = Field(
        80, ge=60, le=100, description="Minimum consistency with the attempt's reference (60-100)."
    )
    style: SmartStyle = "character_production"
    tags: str = Field(
        "smart generation",
        max_length=500,
        description="Comma-separated tags for the gallery image.",
    )
    numVariations: int = Field(
        2, ge=1, le=8, description="Images generated and scored per attempt; the best is validated."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="Base seed; random (and recorded in the trace) when omitted.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        return _has_text(value, "prompt")  # type: ignore[return-value]

    @field_validator("characterName")
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        return _has_text(value, "characterName")

    def tag_list(self) -> list[str]:
        return clean_tags([t for t in self.tags.split(",") if t.strip()]) or []


class SmartImageData(BaseModel):
    characterId: str
    characterName: str
    imageId: str
    publicUrl: str
    selectedReferenceId: str | None
    selectedReferenceType: SelectedReferenceType | None
    qualityScore: float
    consistencyScore: float | None
    attempts: int
    generationTime: int = Field(description="Milliseconds.")
    validationNotes: str
    filename: str
    generationId: str = Field(description="The run's trace: /traces/{generationId}.")
    promptAnalysis: dict[str, Any] = Field(
        description="Seed 003's prompt analysis: shot type, angle, mood, setting, keywords."
    )


class SmartImageSuccess(BaseModel):
    success: Literal[True] = True
    message: str
    data: SmartImageData


class SmartImageAttempt(BaseModel):
    referenceUsed: str | None
    qualityScore: float | None
    consistencyScore: float | None
    reason: str


class SmartImageErrorDetails(BaseModel):
    attempts: list[SmartImageAttempt] = Field(default_factory=list)
    totalAttempts: int = 0
    failureReasons: list[str] = Field(default_factory=list)


class SmartImageError(BaseModel):
    """Seed 003's error body. A 422 also carries FastAPI's ``detail`` list naming the fields."""

    success: Literal[False] = False
    error: str
    details: SmartImageErrorDetails = Field(default_factory=SmartImageErrorDetails)
    detail: list[dict[str, Any]] | None = None
