"""Scores and ranks. Scorer outputs are 0-100 per image; everything here is plain data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Slot = Literal["pickscore", "clip", "vqa", "aesthetic"]
"""The four slots of the weighted ensemble (DESIGN.md, seed 004)."""

BASE_WEIGHTS: dict[str, float] = {"pickscore": 0.50, "clip": 0.25, "vqa": 0.15, "aesthetic": 0.10}


class ScorerInfo(BaseModel):
    """Which scorer served a slot, for the trace."""

    slot: Slot
    name: str = Field(description="e.g. 'pickscore', 'technical-quality (stand-in)'.")
    model: str = ""
    stand_in: bool = Field(False, description="True for offline heuristics standing in for a model.")


class EnsembleReport(BaseModel):
    """What the ensemble used: the scorers that ran, the slots left out, the effective weights."""

    scorers: list[ScorerInfo]
    missing: dict[str, str] = Field(default_factory=dict, description="slot -> why it was left out")
    effective_weights: dict[str, float]


class VariationScore(BaseModel):
    """One variation's scores within one attempt."""

    attempt: int = Field(ge=1)
    index: int = Field(ge=1)
    seed: int
    path: str
    reference_id: str | None = None
    components: dict[str, float] = Field(description="slot -> 0-100")
    overall: float = Field(ge=0, le=100)
    consistency: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Similarity to the references, 0-100: the lower of consistency_reference and consistency_anchor.",
    )
    consistency_reference: float | None = Field(
        None, ge=0, le=100, description="Similarity to the attempt's chosen reference, 0-100."
    )
    consistency_anchor: float | None = Field(
        None, ge=0, le=100, description="Similarity to the storyboard's anchor when it was a second reference, 0-100."
    )
    rank: int = Field(0, ge=0, description="1 = best within its attempt; 0 until ranked.")
