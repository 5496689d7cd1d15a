"""CLIP-score: prompt-image agreement as torchmetrics defines it, ``100 * max(cos, 0)``
(Hessel et al. 2021 without their 2.5 rescaling), mapped to 0-100 by
``normalise.clipscore_to_100``.

The ViT-L/14 image embeddings it computes are the ones the LAION aesthetic head reads, and
both scorers share them through the backbone's embedding cache (see ``aesthetic``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from imageforge.scoring.clip_backbone import ClipBackbone, check_batch_size, load_clip_backbone
from imageforge.scoring.normalise import CLIPSCORE_BAND, clipscore_to_100
from imageforge.scoring.schemas import Slot
from imageforge.tools.model_cache import ModelCache, model_cache

__all__ = ["CLIPSCORE_MODEL", "ClipScoreScorer", "clipscore_raw", "load_clipscore_scorer"]

CLIPSCORE_MODEL = "openai/clip-vit-large-patch14"


def clipscore_raw(cosines: torch.Tensor) -> list[float]:
    """``100 * max(cos, 0)`` per image, from ``ClipBackbone.prompt_cosines``."""
    return (100.0 * cosines).clamp_min(0.0).tolist()


@dataclass(eq=False)
class ClipScoreScorer:
    """Scorer for the "clip" slot. ``raw_scores`` gives the torchmetrics CLIPScore values."""

    backbone: ClipBackbone
    batch_size: int = 8
    band: tuple[float, float] = CLIPSCORE_BAND
    name: str = "clip-score"
    slot: Slot = "clip"
    stand_in: bool = False
    model: str = ""

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        self.model = self.model or self.backbone.name

    def raw_scores(self, images: Sequence[Image.Image], prompt: str) -> list[float]:
        return clipscore_raw(self.backbone.prompt_cosines(images, prompt, self.batch_size))

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        return [clipscore_to_100(raw, self.band) for raw in self.raw_scores(images, prompt)]


def load_clipscore_scorer(
    *,
    model: str = CLIPSCORE_MODEL,
    device: str = "auto",
    batch_size: int = 8,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> ClipScoreScorer:
    """CLIP-score from a local path or the Hugging Face cache. ViT-L/14: ~1.7 GB fp32."""
    backbone = load_clip_backbone(model, device=device, allow_download=allow_download, models=models)
    return ClipScoreScorer(backbone=backbone, batch_size=batch_size)
