"""Map each scorer's raw values onto the shared 0-100 scale.

Plain functions of numbers, so they are tested with hand-written values and no models. Each
model scores on its own scale; the ensemble needs one scale where "0" means "clearly bad for
this metric" and "100" means "as good as real, well-matched images get". A linear band
between two raw values, clipped, does that and keeps the order of images within a batch.

Where the band edges come from:

* PickScore (``logit_scale.exp() * cos`` with the learned scale ~100): images on Pick-a-Pic
  style prompts spread over roughly 18-23, with per-model means reported in the diffusion
  preference-tuning literature of about 20-21 for SD 1.5 and 22-23 for SDXL-class models;
  mismatched or broken images fall towards 17. Band: 17 -> 0, 24 -> 100, so an SDXL-class
  image lands near 70-85 and the best get headroom.
* CLIP-score (torchmetrics' ``100 * max(cos, 0)``, ViT-L/14): matched real image-caption
  pairs lie about 20-35 (generated images for their own prompt typically 25-33), unrelated
  pairs about 10-18. Band: 15 -> 0, 35 -> 100.
* LAION aesthetic predictor: trained on 1-10 ratings (AVA, SAC, LAION-Logos); ``(s-1)/9``.
* VQAScore: already a probability, P("Yes") * 100.
* Image-to-image consistency: cosines between image embeddings do not start at 0 for
  unrelated images. CLIP image embeddings share a narrow cone (unrelated photos ~0.4-0.5);
  DreamBooth (Ruiz et al. 2023, table 1) reports CLIP-I 0.885 / DINO 0.774 between real
  photos of the same subject and 0.78-0.81 / 0.57-0.70 for good subject-driven generations.
  Bands: CLIP 0.5 -> 0, 0.9 -> 100; DINOv2 0.2 -> 0, 0.8 -> 100. An identical image scores 100.
"""

from __future__ import annotations

import math

__all__ = [
    "AESTHETIC_RANGE",
    "CLIPSCORE_BAND",
    "CONSISTENCY_BANDS",
    "PICKSCORE_BAND",
    "aesthetic_to_100",
    "band_to_100",
    "clipscore_to_100",
    "consistency_to_100",
    "pickscore_to_100",
    "probability_to_100",
]

PICKSCORE_BAND: tuple[float, float] = (17.0, 24.0)
CLIPSCORE_BAND: tuple[float, float] = (15.0, 35.0)
AESTHETIC_RANGE: tuple[float, float] = (1.0, 10.0)
CONSISTENCY_BANDS: dict[str, tuple[float, float]] = {"clip": (0.5, 0.9), "dinov2": (0.2, 0.8)}


def band_to_100(raw: float, low: float, high: float) -> float:
    """Linear map of ``raw`` from [low, high] to [0, 100], clipped at both ends."""
    if not high > low:
        raise ValueError(f"`high` must be greater than `low`, got low={low!r}, high={high!r}.")
    if math.isnan(raw):
        raise ValueError(f"`raw` must be a number, got {raw!r}.")
    return min(100.0, max(0.0, (raw - low) / (high - low) * 100.0))


def pickscore_to_100(raw: float, band: tuple[float, float] = PICKSCORE_BAND) -> float:
    return band_to_100(raw, *band)


def clipscore_to_100(raw: float, band: tuple[float, float] = CLIPSCORE_BAND) -> float:
    return band_to_100(raw, *band)


def aesthetic_to_100(rating: float) -> float:
    """A 1-10 aesthetic rating as 0-100: ``(s - 1) / 9 * 100``, clipped."""
    return band_to_100(rating, *AESTHETIC_RANGE)


def probability_to_100(p: float) -> float:
    if not -1e-6 <= p <= 1 + 1e-6:
        raise ValueError(f"`p` must be a probability in [0, 1], got {p!r}.")
    return min(100.0, max(0.0, p * 100.0))


def consistency_to_100(cosine: float, band: tuple[float, float]) -> float:
    """An image-image cosine as 0-100 through the embedding family's band."""
    return band_to_100(cosine, *band)
