"""Presets (seed 001): a user's named generation settings, applied by name to any request.

A preset stores only the settings it was given (a partial ``GenerationOptions``), so that
applying it changes exactly those and leaves the rest at the request's or the defaults'.
Names are unique per user without regard to case ("My Vintage Style" = "my vintage style").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator
from sqlmodel import JSON, Column, Field, SQLModel, UniqueConstraint

from imageforge.api.models import utcnow
from imageforge.api.models.generation import GenerationOptions

__all__ = ["Preset", "PresetCreate", "PresetPublic", "PresetUpdate", "PresetsPublic", "preset_key"]

PRESET_NAME_MAX = 100


def preset_key(name: str) -> str:
    """The case- and space-insensitive form a preset name is looked up and made unique by."""
    return " ".join(name.split()).casefold()


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("`name` must contain text, got only whitespace.")
    return cleaned


class Preset(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "name_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=PRESET_NAME_MAX)
    name_key: str = Field(max_length=PRESET_NAME_MAX, index=True)
    description: str = Field(default="", max_length=1000)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source_generation_id: str | None = Field(default=None, max_length=64)
    usage_count: int = 0
    last_used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PresetCreate(BaseModel):
    """POST /api/presets: ``settings`` (only what the preset should set) or the id of a
    generation whose settings to save."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=PRESET_NAME_MAX)
    description: str = Field("", max_length=1000)
    settings: GenerationOptions | None = Field(
        None, description="The settings to save; only the fields given are kept."
    )
    generation_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = Field(
        None, description="Save this generation's settings instead."
    )

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str) -> str:
        return _clean_name(value)  # type: ignore[return-value]

    @model_validator(mode="after")
    def _one_source(self) -> PresetCreate:
        if (self.settings is None) == (self.generation_id is None):
            raise ValueError("give exactly one of `settings` and `generation_id`.")
        return self


class PresetUpdate(BaseModel):
    """Every field optional; ``settings`` replaces the stored settings as a whole."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, min_length=1, max_length=PRESET_NAME_MAX)
    description: str | None = Field(None, max_length=1000)
    settings: GenerationOptions | None = None

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        return _clean_name(value)


class PresetPublic(BaseModel):
    id: int
    name: str
    description: str
    settings: dict[str, Any] = Field(description="The fields this preset sets, in the shape of a request's `settings`.")
    source_generation_id: str | None = None
    usage_count: int
    last_used_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class PresetsPublic(BaseModel):
    data: list[PresetPublic]
    count: int
