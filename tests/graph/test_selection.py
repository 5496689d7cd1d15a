"""The pipeline's pure decisions, on hand-written values."""

from __future__ import annotations

import pytest

from imageforge.agents.schemas import Critique, DimensionScores, EnhancedPrompt, Iteration
from imageforge.graph.selection import (
    best_iteration,
    choose_winner,
    explain_winner,
    quality_scores_document,
    validate,
)
from imageforge.scoring.ensemble import deciding_component
from imageforge.scoring.schemas import VariationScore
from imageforge.traces.schemas import Attempt

WEIGHTS = {"pickscore": 0.5, "clip": 0.25, "vqa": 0.15, "aesthetic": 0.10}


def _iteration(number: int, overall_dims: float) -> Iteration:
    enhanced = EnhancedPrompt(
        prompt=f"prompt {number}",
        shot_type="medium shot",
        camera_angle="eye-level",
        lens="50mm",
        aperture="f/2",
        lighting="soft window light",
        color_temperature_k=5000,
        composition="rule of thirds",
    )
    scores = DimensionScores(
        completeness=overall_dims,
        specificity=overall_dims,
        professionalism=overall_dims,
        cinematography=overall_dims,
        brand_alignment=overall_dims,
    )
    return Iteration(iteration=number, enhanced=enhanced, critique=Critique(scores=scores, critique="c"))


def _variation(
    index: int, overall: float, rank: int, consistency: float | None = None, **components: float
) -> VariationScore:
    return VariationScore(
        attempt=1,
        index=index,
        seed=100 + index,
        path=f"/tmp/image_{index}.png",
        components=components or {"pickscore": overall},
        overall=overall,
        consistency=consistency,
        rank=rank,
    )


def _attempt(number: int, quality: float, passed: bool, consistency: float | None = None) -> Attempt:
    variation = _variation(1, quality, 1, consistency).model_copy(update={"attempt": number})
    return Attempt(
        attempt=number,
        seeds=[1],
        variations=[variation],
        best_index=1,
        quality=quality,
        consistency=consistency,
        passed=passed,
        reason="r",
    )


def test_best_iteration_keeps_the_best_not_the_last():
    iterations = [_iteration(1, 60), _iteration(2, 88), _iteration(3, 70)]
    assert best_iteration(iterations) == 2


def test_best_iteration_prefers_the_later_version_on_a_tie():
    assert best_iteration([_iteration(1, 80), _iteration(2, 80)]) == 2


def test_best_iteration_rejects_empty():
    with pytest.raises(ValueError, match="iterations"):
        best_iteration([])


def test_validate_reports_quality_and_consistency_like_seed_003():
    passed, reason, failures = validate(
        _variation(1, 65, 1, consistency=75), quality_threshold=70, consistency_threshold=80
    )
    assert not passed
    assert reason == "Failed validation - Quality: 65.0/70, Consistency: 75.0/80"
    assert failures == ["Quality threshold not met", "Consistency validation failed"]


def test_validate_skips_consistency_without_a_reference_or_when_disabled():
    assert validate(_variation(1, 40, 1), quality_threshold=30, consistency_threshold=80)[0]
    assert validate(_variation(1, 40, 1, consistency=10), quality_threshold=30, consistency_threshold=0)[0]


def test_validate_passes_on_the_threshold_itself():
    passed, reason, _ = validate(_variation(1, 30, 1, consistency=50), quality_threshold=30, consistency_threshold=50)
    assert passed and reason.startswith("Passed validation")


def test_choose_winner_takes_the_first_passing_attempt():
    attempts = [_attempt(1, 20, False), _attempt(2, 40, True), _attempt(3, 90, True)]
    winner, status = choose_winner(attempts, strict=False)
    assert (winner.attempt, status) == (2, "passed")


def test_choose_winner_lenient_keeps_the_best_failed_attempt():
    attempts = [_attempt(1, 20, False, 90), _attempt(2, 25, False, 10), _attempt(3, 25, False, 60)]
    winner, status = choose_winner(attempts, strict=False)
    assert (winner.attempt, status) == (3, "accepted_with_warning")


def test_choose_winner_strict_has_no_winner():
    assert choose_winner([_attempt(1, 20, False)], strict=True) == (None, "failed")


def test_deciding_component_is_the_largest_weighted_lead():
    winner = {"pickscore": 60, "clip": 90}
    runner = {"pickscore": 58, "clip": 70}
    assert deciding_component(winner, runner, {"pickscore": 0.5, "clip": 0.25}) == "clip"  # 0.25*20 > 0.5*2


def test_explain_winner_names_margin_and_deciding_component():
    variations = [
        _variation(2, 70.0, 1, pickscore=80, clip=50),
        _variation(1, 65.0, 2, pickscore=70, clip=55),
    ]
    attempt = Attempt(
        attempt=1,
        seeds=[101, 102],
        variations=variations,
        best_index=2,
        quality=70.0,
        passed=True,
        reason="Passed validation - Quality: 70.0/30",
    )
    text = explain_winner(attempt, {"pickscore": 2 / 3, "clip": 1 / 3}, "passed")
    assert "image_2.png" in text
    assert "margin of 5.0 points" in text
    assert "deciding component was pickscore" in text


def test_quality_scores_document_lists_every_variation_of_every_attempt():
    attempts = [_attempt(1, 20, False), _attempt(2, 40, True)]
    document = quality_scores_document(attempts, WEIGHTS, attempts[1])
    assert document["winner"] == {"attempt": 2, "index": 1}
    assert [a["attempt"] for a in document["attempts"]] == [1, 2]
    assert all(len(a["variations"]) == 1 for a in document["attempts"])
