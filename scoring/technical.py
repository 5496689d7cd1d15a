"""Technical image quality: the offline stand-in for the aesthetic slot.

The LAION aesthetic predictor needs CLIP ViT-L/14 weights, which are not on every machine.
This scorer needs nothing: it measures what a photo editor checks first (is it sharp, well
exposed, contrasty, colourful) from the pixels alone. It says nothing about whether the
image is beautiful or matches the prompt, and the trace marks it as a stand-in.

Each measurement is mapped to 0-100 by a closed-form curve below; the score is their
weighted mean. Images are analysed at a fixed 256x256, so scores do not depend on the
output resolution, and the whole batch is one numpy pass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from imageforge.scoring.schemas import Slot

__all__ = [
    "ANALYSIS_SIZE",
    "COMPONENT_WEIGHTS",
    "TechnicalQualityScorer",
    "colourfulness_score",
    "contrast_score",
    "exposure_score",
    "measure",
    "sharpness_score",
]

ANALYSIS_SIZE = 256

#: Weights of the four measurements in the technical score (sum 1). Sharpness weighs most:
#: blur is the defect a generator most often produces and a viewer notices first.
COMPONENT_WEIGHTS: dict[str, float] = {
    "sharpness": 0.35,
    "exposure": 0.25,
    "contrast": 0.20,
    "colourfulness": 0.20,
}

#: Laplacian variance (on 0-255 luminance at 256x256) that scores 63: 1 - e^-1.
SHARPNESS_SCALE = 200.0
#: Pixels at or beyond these luminance levels count as clipped.
CLIP_LOW, CLIP_HIGH = 5.0, 250.0
#: Luminance standard deviation that scores 100 for contrast.
CONTRAST_BEST = 60.0
#: Beyond the best, contrast loses score until this standard deviation (harsh, posterised).
CONTRAST_HARSH = 150.0
#: Hasler-Süsstrunk M that scores 63 ("quite colourful" is about 59).
COLOURFULNESS_SCALE = 40.0


def sharpness_score(laplacian_variance: np.ndarray) -> np.ndarray:
    """``100 * (1 - exp(-v / 200))``: 0 for a flat image, 22 at v=50 (soft), 63 at v=200,
    92 at v=500 (crisp); saturating, so noise cannot buy much beyond crisp."""
    v = np.maximum(np.asarray(laplacian_variance, dtype=np.float64), 0.0)
    return 100.0 * (1.0 - np.exp(-v / SHARPNESS_SCALE))


def exposure_score(mean_luminance: np.ndarray, clipped_fraction: np.ndarray) -> np.ndarray:
    """``100 * (1 - |mean - 127.5| / 127.5) * (1 - min(1, 2 * clipped))``.

    100 for a mean at mid-grey with nothing clipped; 0 for an all-white or all-black frame;
    every 1% of pixels burnt out or crushed costs 2% of the score.
    """
    mean = np.asarray(mean_luminance, dtype=np.float64)
    clipped = np.asarray(clipped_fraction, dtype=np.float64)
    closeness = np.clip(1.0 - np.abs(mean - 127.5) / 127.5, 0.0, 1.0)
    return 100.0 * closeness * (1.0 - np.minimum(1.0, 2.0 * clipped))


def contrast_score(luminance_std: np.ndarray) -> np.ndarray:
    """Rises linearly from 0 (flat) to 100 at a luminance std of 60, then falls linearly to
    0 at 150: a frame of pure black and white halves (std 127.5) scores 25."""
    s = np.asarray(luminance_std, dtype=np.float64)
    rising = s / CONTRAST_BEST
    falling = 1.0 - (s - CONTRAST_BEST) / (CONTRAST_HARSH - CONTRAST_BEST)
    return 100.0 * np.clip(np.where(s <= CONTRAST_BEST, rising, falling), 0.0, 1.0)


def colourfulness_score(m: np.ndarray) -> np.ndarray:
    """``100 * (1 - exp(-M / 40))`` of Hasler & Süsstrunk's M: 0 for greyscale, 56 at M=33
    ("moderately colourful"), 77 at 59 ("quite"), 87 at 82 ("highly")."""
    m = np.maximum(np.asarray(m, dtype=np.float64), 0.0)
    return 100.0 * (1.0 - np.exp(-m / COLOURFULNESS_SCALE))


def _stack(images: list[Image.Image]) -> np.ndarray:
    size = (ANALYSIS_SIZE, ANALYSIS_SIZE)
    return np.stack(
        [np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float64) for image in images]
    )


def measure(images: list[Image.Image]) -> dict[str, np.ndarray]:
    """Raw measurements and component scores for a batch, each an array of len(images).

    Luminance is Rec. 709 luma on the sRGB values (no linearisation): it is what the eye
    reads as brightness closely enough for these checks.
    """
    if not images:
        return {}
    rgb = _stack(images)  # (N, S, S, 3)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b

    # 1. Sharpness: variance of the 4-neighbour Laplacian.
    lap = luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] - 4.0 * luma[:, 1:-1, 1:-1]
    lap_var = lap.reshape(len(images), -1).var(axis=1)

    # 2. Exposure: mean luminance and the clipped share of pixels.
    flat = luma.reshape(len(images), -1)
    mean = flat.mean(axis=1)
    clipped = ((flat <= CLIP_LOW) | (flat >= CLIP_HIGH)).mean(axis=1)

    # 3. Contrast: luminance standard deviation.
    std = flat.std(axis=1)

    # 4. Colourfulness (Hasler & Süsstrunk 2003) on the opponent axes rg and yb.
    rg = (r - g).reshape(len(images), -1)
    yb = (0.5 * (r + g) - b).reshape(len(images), -1)
    m = np.sqrt(rg.var(axis=1) + yb.var(axis=1)) + 0.3 * np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2)

    return {
        "laplacian_variance": lap_var,
        "mean_luminance": mean,
        "clipped_fraction": clipped,
        "luminance_std": std,
        "hasler_m": m,
        "sharpness": sharpness_score(lap_var),
        "exposure": exposure_score(mean, clipped),
        "contrast": contrast_score(std),
        "colourfulness": colourfulness_score(m),
    }


class TechnicalQualityScorer:
    """:class:`scoring.base.Scorer` for the aesthetic slot, computed from pixels alone.

    An offline stand-in (``stand_in = True``): it needs no weights and runs anywhere. The
    ``prompt`` argument of :meth:`score` is unused; technical quality does not depend on it.
    """

    name = "technical-quality"
    slot: Slot = "aesthetic"
    model = ""
    stand_in = True

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        weights = dict(COMPONENT_WEIGHTS if weights is None else weights)
        if set(weights) != set(COMPONENT_WEIGHTS):
            raise ValueError(
                f"`weights` must have exactly the keys {sorted(COMPONENT_WEIGHTS)}, got {sorted(weights)}."
            )
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"`weights` must be non-negative with a positive sum, got {weights!r}.")
        self.weights = weights

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        """One 0-100 score per image, in order; ``prompt`` is ignored."""
        if not images:
            return []
        parts = measure(images)
        total = sum(self.weights.values())
        overall = sum(parts[name] * weight for name, weight in self.weights.items()) / total
        return [float(v) for v in np.clip(overall, 0.0, 100.0)]
