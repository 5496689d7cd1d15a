"""The raw-to-0-100 mappings, on hand-written values."""

from __future__ import annotations

import math

import pytest

from imageforge.scoring.normalise import (
    CLIPSCORE_BAND,
    CONSISTENCY_BANDS,
    PICKSCORE_BAND,
    aesthetic_to_100,
    band_to_100,
    clipscore_to_100,
    consistency_to_100,
    pickscore_to_100,
    probability_to_100,
)


def test_band_is_linear_and_clipped():
    assert band_to_100(15.0, 10.0, 20.0) == pytest.approx(50.0)
    assert band_to_100(10.0, 10.0, 20.0) == 0.0
    assert band_to_100(20.0, 10.0, 20.0) == 100.0
    assert band_to_100(-5.0, 10.0, 20.0) == 0.0
    assert band_to_100(99.0, 10.0, 20.0) == 100.0


@pytest.mark.parametrize("low, high", [(1.0, 1.0), (2.0, 1.0)])
def test_band_rejects_an_empty_band(low, high):
    with pytest.raises(ValueError, match="`high` must be greater than `low`"):
        band_to_100(1.5, low, high)


def test_band_rejects_nan():
    with pytest.raises(ValueError, match="`raw`"):
        band_to_100(math.nan, 0.0, 1.0)


def test_pickscore_band_edges_and_typical_values():
    assert PICKSCORE_BAND == (17.0, 24.0)
    assert pickscore_to_100(17.0) == 0.0
    assert pickscore_to_100(24.0) == 100.0
    assert pickscore_to_100(20.5) == pytest.approx(50.0)
    # An SDXL-class image (~22.5) lands high but below the top.
    assert 70 < pickscore_to_100(22.5) < 85
    # A tiny random model's raw values (|raw| < 14.3) all map to 0: no test assumes ~100 scale.
    assert pickscore_to_100(1.2) == 0.0


def test_clipscore_band_edges():
    assert CLIPSCORE_BAND == (15.0, 35.0)
    assert clipscore_to_100(15.0) == 0.0
    assert clipscore_to_100(25.0) == pytest.approx(50.0)
    assert clipscore_to_100(35.0) == 100.0
    assert clipscore_to_100(0.0) == 0.0


def test_aesthetic_maps_one_to_ten():
    assert aesthetic_to_100(1.0) == 0.0
    assert aesthetic_to_100(10.0) == 100.0
    assert aesthetic_to_100(5.5) == pytest.approx(50.0)
    assert aesthetic_to_100(0.3) == 0.0
    assert aesthetic_to_100(11.0) == 100.0


def test_probability():
    assert probability_to_100(0.0) == 0.0
    assert probability_to_100(0.25) == pytest.approx(25.0)
    assert probability_to_100(1.0) == 100.0
    with pytest.raises(ValueError, match="`p` must be a probability"):
        probability_to_100(1.5)


def test_consistency_bands_put_identical_images_at_100_and_unrelated_at_0():
    for band in CONSISTENCY_BANDS.values():
        assert consistency_to_100(1.0, band) == 100.0
        assert consistency_to_100(0.0, band) == 0.0
    # DreamBooth's real-photo CLIP-I (0.885) and DINO (0.774) both count as consistent.
    assert consistency_to_100(0.885, CONSISTENCY_BANDS["clip"]) > 90
    assert consistency_to_100(0.774, CONSISTENCY_BANDS["dinov2"]) > 90
    # Unrelated CLIP pairs (~0.45) fall below any sensible threshold.
    assert consistency_to_100(0.45, CONSISTENCY_BANDS["clip"]) == 0.0


def test_mappings_keep_order():
    raws = [17.5, 19.0, 21.2, 23.9]
    mapped = [pickscore_to_100(r) for r in raws]
    assert mapped == sorted(mapped)
