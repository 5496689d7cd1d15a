"""The offline technical-quality scorer and its documented mappings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from imageforge.scoring.base import Scorer
from imageforge.scoring.technical import (
    TechnicalQualityScorer,
    colourfulness_score,
    contrast_score,
    exposure_score,
    measure,
    sharpness_score,
)

SCORER = TechnicalQualityScorer()


def crisp_image(seed: int = 0) -> Image.Image:
    """Well-exposed, sharp-edged coloured blocks around mid-grey: what a good frame offers."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(40, 216, (16, 16, 3)).astype(np.uint8)
    return Image.fromarray(blocks).resize((256, 256), Image.Resampling.NEAREST)


def test_implements_the_scorer_protocol():
    assert isinstance(SCORER, Scorer)
    assert (SCORER.name, SCORER.slot, SCORER.model, SCORER.stand_in) == (
        "technical-quality",
        "aesthetic",
        "",
        True,
    )


def test_defects_score_lower_than_a_crisp_frame():
    crisp = crisp_image()
    blurred = crisp.filter(ImageFilter.GaussianBlur(6))
    flat = Image.new("RGB", (256, 256), (128, 128, 128))
    over = Image.fromarray(np.clip(np.asarray(crisp, dtype=np.int32) + 150, 0, 255).astype(np.uint8))
    under = Image.fromarray((np.asarray(crisp, dtype=np.float64) * 0.12).astype(np.uint8))
    crisp_score, blurred_score, flat_score, over_score, under_score = SCORER.score(
        [crisp, blurred, flat, over, under], "unused"
    )
    assert crisp_score > blurred_score + 10
    assert crisp_score > flat_score + 30
    assert crisp_score > over_score + 20
    assert crisp_score > under_score + 20


def test_blur_lowers_the_sharpness_component():
    crisp = crisp_image()
    parts = measure([crisp, crisp.filter(ImageFilter.GaussianBlur(3))])
    assert parts["sharpness"][0] > parts["sharpness"][1] + 20
    assert parts["laplacian_variance"][0] > 5 * parts["laplacian_variance"][1]


def test_scores_in_range_for_extremes():
    rng = np.random.default_rng(1)
    extremes = [
        Image.new("RGB", (64, 64), "white"),
        Image.new("RGB", (64, 64), "black"),
        Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)),
        Image.new("L", (50, 80), 128),
        Image.new("RGBA", (40, 40), (255, 0, 0, 128)),
    ]
    scores = SCORER.score(extremes, "")
    assert len(scores) == len(extremes)
    assert all(0.0 <= s <= 100.0 for s in scores)
    assert scores[0] < 15 and scores[1] < 15  # blank frames


def test_batch_equals_one_by_one():
    images = [crisp_image(i) for i in range(3)] + [Image.new("RGB", (100, 60), (90, 30, 200))]
    batch = SCORER.score(images, "a prompt")
    alone = [SCORER.score([image], "a prompt")[0] for image in images]
    assert batch == pytest.approx(alone, abs=1e-9)


def test_prompt_is_unused_and_empty_batch():
    image = crisp_image()
    assert SCORER.score([image], "a cat") == SCORER.score([image], "a very different prompt")
    assert SCORER.score([], "anything") == []


def test_mappings_by_hand():
    assert sharpness_score(0.0) == 0.0
    assert sharpness_score(200.0) == pytest.approx(100 * (1 - math.exp(-1)))
    assert sharpness_score(500.0) == pytest.approx(91.79, abs=0.01)
    assert exposure_score(127.5, 0.0) == pytest.approx(100.0)
    assert exposure_score(255.0, 0.0) == pytest.approx(0.0)
    assert exposure_score(63.75, 0.0) == pytest.approx(50.0)
    assert exposure_score(127.5, 0.25) == pytest.approx(50.0)
    assert exposure_score(127.5, 0.6) == pytest.approx(0.0)
    assert contrast_score(0.0) == 0.0
    assert contrast_score(30.0) == pytest.approx(50.0)
    assert contrast_score(60.0) == pytest.approx(100.0)
    assert contrast_score(127.5) == pytest.approx(25.0)
    assert contrast_score(200.0) == 0.0
    assert colourfulness_score(0.0) == 0.0
    assert colourfulness_score(40.0) == pytest.approx(100 * (1 - math.exp(-1)))


def test_measurements_by_hand():
    # Left half pure red, right half pure green, already at the analysis size.
    halves = np.zeros((256, 256, 3), dtype=np.uint8)
    halves[:, :128, 0] = 255
    halves[:, 128:, 1] = 255
    grey = Image.new("RGB", (256, 256), (100, 100, 100))
    parts = measure([Image.fromarray(halves), grey])
    # rg = R - G is +255 / -255 (std 255, mean 0); yb = (R + G) / 2 - B is 127.5 everywhere.
    assert parts["hasler_m"][0] == pytest.approx(255 + 0.3 * 127.5)
    assert parts["hasler_m"][1] == pytest.approx(0.0)
    assert parts["colourfulness"][1] == pytest.approx(0.0)
    assert parts["mean_luminance"][1] == pytest.approx(100.0)
    assert parts["luminance_std"][1] == pytest.approx(0.0, abs=1e-9)
    assert parts["laplacian_variance"][1] == pytest.approx(0.0, abs=1e-9)
    assert parts["clipped_fraction"][1] == 0.0
    assert parts["exposure"][1] == pytest.approx(100 * (1 - 27.5 / 127.5))


def test_custom_weights_and_validation():
    only_sharp = TechnicalQualityScorer({"sharpness": 1, "exposure": 0, "contrast": 0, "colourfulness": 0})
    image = crisp_image()
    assert only_sharp.score([image], "")[0] == pytest.approx(float(measure([image])["sharpness"][0]))
    with pytest.raises(ValueError, match="weights"):
        TechnicalQualityScorer({"sharpness": 1.0})
    with pytest.raises(ValueError, match="weights"):
        TechnicalQualityScorer({"sharpness": -1, "exposure": 0, "contrast": 0, "colourfulness": 0})
