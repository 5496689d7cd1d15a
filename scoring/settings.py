"""What the scorers need; owned here, composed by ``graph.context``."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

__all__ = ["ConsistencyChoice", "ScorerSettings"]

ConsistencyChoice = Literal["auto", "clip", "dinov2", "histogram"]


class ScorerSettings(BaseModel):
    """Which scorers judge the images, and which models they load. None uses each scorer's
    published default model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # NoDecode: an environment variable gives the names comma-separated, not as JSON.
    scorers: Annotated[tuple[str, ...], NoDecode] = Field(("auto",), description="Scorer names, or 'auto' / 'offline'.")
    pickscore_model: str | None = Field(None, description="PickScore model (hub id or path).")
    clip_model: str | None = Field(None, description="CLIP for CLIP-score, the aesthetic head and consistency.")
    vqa_model: str | None = Field(None, description="Vision-language model for VQAScore.")
    consistency: ConsistencyChoice = Field(
        "auto", description="Consistency scorer: embedding cosine (CLIP or DINOv2) or the offline stand-in."
    )
    consistency_model: str | None = Field(None, description="Model for the consistency scorer.")
    batch_size: int = Field(8, ge=1, le=256, description="Images per scorer forward pass.")

    @field_validator("scorers", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        """'pickscore, clip-score' (a CLI flag or an environment variable) as a tuple; a JSON list works too."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return tuple(json.loads(value))
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value
