"""PickScore: a CLIP ViT-H/14 fine-tuned on Pick-a-Pic human preferences (Kirstain et al. 2023).

Raw score, exactly as the PickScore README computes it:
``model.logit_scale.exp() * cos(image_embedding, text_embedding)`` (the learned scale is
~100, so real images score about 18-23), mapped to 0-100 by ``normalise.pickscore_to_100``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from imageforge.scoring.clip_backbone import ClipBackbone, check_batch_size, load_clip_backbone
from imageforge.scoring.normalise import PICKSCORE_BAND, pickscore_to_100
from imageforge.scoring.schemas import Slot
from imageforge.tools.model_cache import ModelCache, model_cache

__all__ = [
    "PICKSCORE_MODEL",
    "PICKSCORE_PROCESSOR",
    "PickScoreScorer",
    "load_pickscore_scorer",
    "pickscore_raw",
]

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


def pickscore_raw(cosines: torch.Tensor, logit_scale: float) -> list[float]:
    """``logit_scale * cos`` per image, from ``ClipBackbone.prompt_cosines``."""
    return (logit_scale * cosines).tolist()


@dataclass(eq=False)
class PickScoreScorer:
    """Scorer for the "pickscore" slot. ``raw_scores`` gives the unmapped PickScore values."""

    backbone: ClipBackbone
    batch_size: int = 8
    band: tuple[float, float] = PICKSCORE_BAND
    name: str = "pickscore"
    slot: Slot = "pickscore"
    stand_in: bool = False
    model: str = ""

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        self.model = self.model or self.backbone.name

    def raw_scores(self, images: Sequence[Image.Image], prompt: str) -> list[float]:
        cosines = self.backbone.prompt_cosines(images, prompt, self.batch_size)
        return pickscore_raw(cosines, self.backbone.logit_scale)

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        return [pickscore_to_100(raw, self.band) for raw in self.raw_scores(images, prompt)]


def load_pickscore_scorer(
    *,
    model: str = PICKSCORE_MODEL,
    processor: str = PICKSCORE_PROCESSOR,
    device: str = "auto",
    batch_size: int = 8,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> PickScoreScorer:
    """PickScore from a local path or the Hugging Face cache (``ModelNotAvailableError`` if
    absent and ``allow_download`` is off). ViT-H/14: ~4 GB in fp32, ~2 GB in fp16."""
    backbone = load_clip_backbone(
        model, processor=processor, device=device, allow_download=allow_download, models=models
    )
    return PickScoreScorer(backbone=backbone, batch_size=batch_size)
