"""The offline consistency scorer: colour histograms plus SSIM."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.scoring.base import ConsistencyScorer
from imageforge.scoring.consistency import HistogramConsistencyScorer, histogram_intersection, ssim_matrix
from imageforge.tools.schemas import ImageSize
from imageforge.tools.sketch import SketchGenerator

SCORER = HistogramConsistencyScorer()
SIZE = ImageSize(width=128, height=128)


def sketch(prompt: str, seed: int) -> Image.Image:
    output = SketchGenerator().generate(prompt, negative_prompt="", seeds=[seed], references=[], size=SIZE)
    return output.images[0].image


def test_implements_the_protocol():
    assert isinstance(SCORER, ConsistencyScorer)
    assert (SCORER.name, SCORER.model) == ("histogram-ssim", "")


def test_identical_image_scores_about_100():
    image = sketch("a woman in a red coat at golden hour", 1)
    assert SCORER.score([image], [image])[0] == pytest.approx(100.0, abs=1e-6)


def test_same_palette_beats_different_palette():
    reference = sketch("medium shot of a woman in a red coat at golden hour, outdoor", 1)
    same_look = sketch("full body shot of a woman in a red coat at golden hour, outdoor", 2)
    other_look = sketch("medium shot of a man in a blue coat at night, outdoor", 1)
    same, other = SCORER.score([same_look, other_look], [reference])
    assert same > other + 10


def test_best_reference_counts():
    image = sketch("a mug at midday", 3)
    unrelated = Image.new("RGB", (64, 64), (0, 0, 0))
    assert SCORER.score([image], [unrelated, image])[0] == pytest.approx(100.0, abs=1e-6)
    assert SCORER.score([image], [unrelated])[0] < 50


def test_scores_in_range_and_in_order():
    images = [sketch("a mug at midday", s) for s in (1, 2)] + [Image.new("RGB", (30, 50), "white")]
    references = [sketch("a mug at midday", 9), Image.new("L", (40, 40), 0)]
    scores = SCORER.score(images, references)
    assert len(scores) == 3 and all(0 <= s <= 100 for s in scores)
    assert scores == pytest.approx([SCORER.score([image], references)[0] for image in images])


def test_empty_references_rejected_empty_images_allowed():
    with pytest.raises(ValueError, match="references"):
        SCORER.score([Image.new("RGB", (8, 8))], [])
    assert SCORER.score([], [Image.new("RGB", (8, 8))]) == []


def test_histogram_intersection_by_hand():
    a = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    b = np.array([[1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
    assert histogram_intersection(a, b) == pytest.approx(np.array([[0.5, 0.5], [0.0, 0.5]]))


def test_ssim_by_hand_for_flat_images():
    # Flat images: SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * 255)^2.
    grey_100, grey_150 = Image.new("L", (64, 64), 100), Image.new("L", (64, 64), 150)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert ssim_matrix([grey_100], [grey_150, grey_100])[0] == pytest.approx([expected, 1.0])
