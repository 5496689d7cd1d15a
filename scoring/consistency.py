"""Consistency with the references from pixels alone: the offline stand-in.

Seed 003 validates consistency with image embeddings (DINOv3 there, a CLIP or DINOv2 image
encoder here when weights exist). Without weights, two cheap signals still separate "same
look" from "different look": the colour distribution (does the frame use the reference's
palette?) and the coarse structure (are light and dark masses where the reference has
them?). Histogram intersection measures the first, SSIM on small greyscale thumbnails the
second. Both are computed for every (image, reference) pair in one vectorised pass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "HISTOGRAM_WEIGHT",
    "SSIM_WEIGHT",
    "HistogramConsistencyScorer",
    "color_histograms",
    "histogram_intersection",
    "ssim_matrix",
]

#: The colour distribution is the look a storyboard must keep across scenes whose
#: composition changes on purpose, so it weighs more than structure.
HISTOGRAM_WEIGHT = 0.6
SSIM_WEIGHT = 0.4

HISTOGRAM_BINS = 8  # per RGB channel: 512 joint bins
HISTOGRAM_SIZE = 64  # thumbnail edge for histograms
SSIM_SIZE = 64  # greyscale thumbnail edge for SSIM
SSIM_WINDOW = 7  # uniform window, as scikit-image's default
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def color_histograms(images: list[Image.Image], bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Joint RGB histograms, normalised to sum 1: shape (len(images), bins**3)."""
    size = (HISTOGRAM_SIZE, HISTOGRAM_SIZE)
    pixels = np.stack([np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR)) for im in images])
    quantised = (pixels.astype(np.int64) * bins) // 256  # (N, S, S, 3) in [0, bins)
    codes = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    codes = codes.reshape(len(images), -1) + (np.arange(len(images)) * bins**3)[:, None]
    counts = np.bincount(codes.ravel(), minlength=len(images) * bins**3).reshape(len(images), bins**3)
    return counts / counts.sum(axis=1, keepdims=True)


def histogram_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Swain & Ballard's intersection sum(min(a, b)) for every pair: (len(a), len(b)) in [0, 1]."""
    return np.minimum(a[:, None, :], b[None, :, :]).sum(axis=-1)


def _box_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over every ``window`` x ``window`` patch of the last two axes ('valid' mode)."""
    c = np.cumsum(np.cumsum(x, axis=-2), axis=-1)
    c = np.pad(c, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    total = (
        c[..., window:, window:] - c[..., :-window, window:] - c[..., window:, :-window] + c[..., :-window, :-window]
    )
    return total / (window * window)


def _grey(images: list[Image.Image]) -> np.ndarray:
    size = (SSIM_SIZE, SSIM_SIZE)
    return np.stack(
        [np.asarray(im.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float64) for im in images]
    )


def ssim_matrix(images: list[Image.Image], references: list[Image.Image]) -> np.ndarray:
    """Mean SSIM (Wang et al. 2004, uniform 7x7 window) of every image against every
    reference on 64x64 greyscale thumbnails: (len(images), len(references)) in [-1, 1]."""
    x = _grey(images)[:, None]  # (N, 1, S, S)
    y = _grey(references)[None, :]  # (1, M, S, S)
    mu_x, mu_y = _box_mean(x, SSIM_WINDOW), _box_mean(y, SSIM_WINDOW)
    var_x = _box_mean(x * x, SSIM_WINDOW) - mu_x**2
    var_y = _box_mean(y * y, SSIM_WINDOW) - mu_y**2
    cov = _box_mean(x * y, SSIM_WINDOW) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return ssim.mean(axis=(-2, -1))


class HistogramConsistencyScorer:
    """:class:`scoring.base.ConsistencyScorer` without weights (an offline stand-in).

    Per pair: ``100 * (0.6 * intersection + 0.4 * max(0, SSIM))``; an image's score is its
    best pair, so matching either the previous winner or the anchor is enough.
    """

    name = "histogram-ssim"
    model = ""
    stand_in = True

    def score(self, images: list[Image.Image], references: list[Image.Image]) -> list[float]:
        """One 0-100 similarity per image, in order."""
        if not references:
            raise ValueError("`references` must hold at least one image; consistency needs something to compare with.")
        if not images:
            return []
        hist = histogram_intersection(color_histograms(images), color_histograms(references))
        ssim = np.maximum(ssim_matrix(images, references), 0.0)
        pairs = 100.0 * (HISTOGRAM_WEIGHT * hist + SSIM_WEIGHT * ssim)
        return [float(v) for v in np.clip(pairs.max(axis=1), 0.0, 100.0)]
