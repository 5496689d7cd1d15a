"""scoring.statistics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imageforge.scoring.statistics import bootstrap_mean, paired_differences, win_rate


def test_bootstrap_interval_matches_the_hand_computed_resamples():
    # Fixture: values [1, 2, 4], 4 resamples, seed 0. numpy's default_rng(0) draws the index
    # rows [2,1,1], [0,0,0], [0,0,0], [2,1,2] (checked below), whose means are
    # (4+2+2)/3 = 8/3, 1, 1 and (4+2+4)/3 = 10/3. Sorted: 1, 1, 8/3, 10/3. numpy's linear
    # quantile puts 2.5 % at position 0.075 (between 1 and 1: 1) and 97.5 % at position 2.925:
    # 8/3 + 0.925 * (10/3 - 8/3) = 3.28333...
    draws = np.random.default_rng(0).integers(0, 3, size=(4, 3))
    assert draws.tolist() == [[2, 1, 1], [0, 0, 0], [0, 0, 0], [2, 1, 2]]

    interval = bootstrap_mean([1, 2, 4], resamples=4, seed=0)

    assert interval.mean == pytest.approx(7 / 3)
    assert interval.low == pytest.approx(1.0)
    assert interval.high == pytest.approx(8 / 3 + 0.925 * 2 / 3)
    assert interval.n == 3 and interval.confidence == 0.95


def test_bootstrap_degenerate_and_two_point_cases():
    constant = bootstrap_mean([42.0, 42.0, 42.0])
    assert (constant.mean, constant.low, constant.high) == (42.0, 42.0, 42.0)
    single = bootstrap_mean([7.5])
    assert (single.low, single.high, single.n) == (7.5, 7.5, 1)
    # Two values: a resample mean is 0, 50 or 100 with probability 1/4, 1/2, 1/4, so with
    # thousands of resamples the 2.5 % and 97.5 % quantiles are the two ends.
    spread = bootstrap_mean([0.0, 100.0], resamples=4000, seed=3)
    assert (spread.mean, spread.low, spread.high) == (50.0, 0.0, 100.0)


def test_bootstrap_is_reproducible_and_close_to_the_normal_interval():
    values = [float(v) for v in np.linspace(0, 100, 201)]
    first = bootstrap_mean(values, seed=5)
    assert first == bootstrap_mean(values, seed=5)
    half_width = 1.96 * np.std(values) / math.sqrt(len(values))  # 4.06 for this evenly spread sample
    assert first.mean == pytest.approx(50.0)
    assert first.high - first.mean == pytest.approx(half_width, rel=0.15)
    assert first.mean - first.low == pytest.approx(half_width, rel=0.15)


def test_paired_differences_and_win_rates_by_hand():
    enhanced = [60.0, 55.0, 70.0, 40.0, 50.0]
    raw = [50.0, 55.0, 65.0, 45.0, 50.0]
    assert paired_differences(enhanced, raw).tolist() == [10.0, 0.0, 5.0, -5.0, 0.0]
    rate = win_rate(enhanced, raw)
    assert (rate.wins, rate.ties, rate.losses, rate.n) == (2, 2, 1, 5)
    assert rate.rate == pytest.approx((2 + 0.5 * 2) / 5)  # 0.6
    difference = bootstrap_mean(paired_differences(enhanced, raw))
    assert difference.mean == pytest.approx(2.0)
    assert difference.low < 2.0 < difference.high


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bootstrap_mean([]), "at least one value"),
        (lambda: bootstrap_mean([1.0, float("nan")]), "finite"),
        (lambda: bootstrap_mean([1.0], confidence=1.0), "confidence"),
        (lambda: bootstrap_mean([1.0], resamples=0), "resamples"),
        (lambda: paired_differences([1.0, 2.0], [1.0]), "pair up"),
        (lambda: win_rate([1.0], [1.0], tolerance=-1), "tolerance"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
