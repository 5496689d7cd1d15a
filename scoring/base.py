"""The one interface every scorer implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from imageforge.scoring.schemas import Slot


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of images against one prompt: one 0-100 value per image, in order.

    Implementations score the whole batch in as few forward passes as their batch size
    allows. ``slot`` says which ensemble weight the scorer serves.
    """

    name: str
    slot: Slot
    model: str
    stand_in: bool

    def score(self, images: list[Image.Image], prompt: str) -> list[float]: ...


@runtime_checkable
class ConsistencyScorer(Protocol):
    """Similarity of each image to a set of references, 0-100 (the best match counts)."""

    name: str
    model: str

    def score(self, images: list[Image.Image], references: list[Image.Image]) -> list[float]: ...
