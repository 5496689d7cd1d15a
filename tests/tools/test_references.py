"""Seed 003's reference features, reference ranking and attempt strategy."""

from __future__ import annotations

import pytest

from imageforge.tools.references import (
    RankedReference,
    ReferenceFeatures,
    attempt_references,
    extract_keywords,
    rank_references,
    reference_features,
)
from imageforge.tools.schemas import ReferenceImage


def ref(ref_id: str, kind: str = "generated", **fields) -> ReferenceImage:
    return ReferenceImage(id=ref_id, kind=kind, path=f"/refs/{ref_id}.png", **fields)


def ranked(*refs: ReferenceImage) -> list[RankedReference]:
    """Ranked entries in the given order (the strategy only reads the order)."""
    return [RankedReference(reference=r, score=float(100 - i)) for i, r in enumerate(refs)]


NEUTRAL = ReferenceFeatures()  # medium, front, no keywords


# --- analysis ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "shot"),
    [
        ("Close-up portrait with dramatic lighting", "close-up"),
        ("medium close-up shot of a barista", "close-up"),  # the longer phrase wins
        ("medium shot, waist up", "medium"),
        ("full body action pose, jumping through the air", "full-body"),
        ("medium long shot of a runner", "full-body"),
        ("wide establishing shot of the harbour", "wide"),
        ("a cat on a sofa", "medium"),  # default
    ],
)
def test_shot_type(prompt, shot):
    assert reference_features(prompt).shot_type == shot


@pytest.mark.parametrize(
    ("prompt", "angle"),
    [
        ("side view of a cyclist", "side"),
        ("her profile against the window", "side"),
        ("rear view, walking away", "back"),
        ("three-quarter view of the car", "45-degree"),
        ("shot at a 45-degree angle", "45-degree"),
        ("facing the camera", "front"),
        ("a cat on a sofa", "front"),  # default
    ],
)
def test_angle(prompt, angle):
    assert reference_features(prompt).angle == angle


@pytest.mark.parametrize(
    ("prompt", "mood", "setting"),
    [
        ("running and jumping on the beach", "action", "outdoor"),
        ("calm, serene morning in the kitchen", "calm", "indoor"),
        ("dramatic, moody product shot in the studio", "dramatic", "studio"),
        ("a red apple", "neutral", "neutral"),
    ],
)
def test_mood_and_setting(prompt, mood, setting):
    analysis = reference_features(prompt)
    assert (analysis.mood, analysis.setting) == (mood, setting)


def test_keywords():
    assert extract_keywords("The woman's red Coffee mug, and the mug again; 3 cups") == [
        "woman",
        "red",
        "coffee",
        "mug",
        "again",
        "cups",
    ]
    assert reference_features("a cat on a sofa").keywords == ["cat", "sofa"]
    assert len(extract_keywords(" ".join(f"word{chr(97 + i)}x" for i in range(26)))) <= 20


# --- ranking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "score", "reason"),
    [
        ("master", 10, "master +10"),
        ("user", 10, "user image (master) +10"),
        ("core", 8, "core reference +8"),
        ("generated", 5, "generated +5"),
    ],
)
def test_kind_scores(kind, score, reason):
    [result] = rank_references([ref("r", kind)], NEUTRAL)
    assert result.score == score
    assert result.reasons == [reason]


def test_quality_and_consistency_bonus_at_80_not_below():
    [high] = rank_references([ref("a", quality_score=80, consistency_score=92)], NEUTRAL)
    [low] = rank_references([ref("b", quality_score=79.9, consistency_score=79.9)], NEUTRAL)
    assert high.score == 5 + 5 + 5
    assert "quality 80 >= 80 +5" in high.reasons and "consistency 92 >= 80 +5" in high.reasons
    assert low.score == 5


def test_shot_and_angle_match_read_free_text():
    analysis = reference_features("close-up, side view")
    [both] = rank_references([ref("a", shot_type="extreme close-up", camera_angle="profile")], analysis)
    [neither] = rank_references([ref("b", shot_type="wide shot", camera_angle="rear view")], analysis)
    assert both.score == 5 + 5 + 3
    assert "shot type close-up matches +5" in both.reasons
    assert "angle side matches +3" in both.reasons
    assert neither.score == 5


def test_keyword_bonus_one_each_capped_at_seven():
    analysis = ReferenceFeatures(keywords=["coffee", "mug", "kitchen"])
    [two] = rank_references([ref("a", keywords=["Coffee", "mug", "tea"])], analysis)
    assert two.score == 5 + 2
    assert "2 shared keywords (coffee, mug) +2" in two.reasons
    many = [f"k{i}" for i in range(10)]
    [capped] = rank_references([ref("b", keywords=many)], ReferenceFeatures(keywords=many))
    assert capped.score == 5 + 7


def test_full_matching_bonus_is_fifteen():
    many = [f"k{i}" for i in range(9)]
    analysis = ReferenceFeatures(shot_type="wide", angle="back", keywords=many)
    [best] = rank_references([ref("a", shot_type="wide shot", camera_angle="back view", keywords=many)], analysis)
    assert best.score == 5 + 15


def test_chain_bonus_puts_previous_winner_first():
    candidates = [
        ref("master", "master"),
        ref("scene_1", scene_number=1),
        ref("scene_2", scene_number=2),
    ]
    result = rank_references(candidates, NEUTRAL, chain_scene=2)
    assert [r.reference.id for r in result] == ["scene_2", "master", "scene_1"]
    assert result[0].score == 5 + 15
    assert "previous scene's winner +15" in result[0].reasons
    # Without chaining the master leads.
    assert rank_references(candidates, NEUTRAL)[0].reference.id == "master"


def test_chain_bonus_only_for_generated_references():
    [core] = rank_references([ref("c", "core", scene_number=2)], NEUTRAL, chain_scene=2)
    assert core.score == 8


def test_ties_by_kind_priority_then_id():
    candidates = [
        ref("z", "master"),
        ref("b", "generated", quality_score=90),
        ref("a", "generated", quality_score=95),
        ref("u", "user"),
    ]
    result = rank_references(candidates, NEUTRAL)
    # All score 10: user before master before generated; generated "a" before "b".
    assert [r.score for r in result] == [10, 10, 10, 10]
    assert [r.reference.id for r in result] == ["u", "z", "a", "b"]


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="candidates"):
        rank_references([ref("x"), ref("x", "master")], NEUTRAL)


def test_empty_candidates_rank_to_empty():
    assert rank_references([], NEUTRAL) == []


# --- attempt strategy -------------------------------------------------------------------


def ids(plan):
    return [None if r is None else r.id for r in plan]


def test_no_candidates_means_no_reference_on_every_attempt():
    assert attempt_references([], 3) == [None, None, None]


def test_master_second_when_not_first():
    plan = attempt_references(ranked(ref("g1"), ref("c1", "core"), ref("m", "master"), ref("g2")), 4)
    assert ids(plan) == ["g1", "m", "c1", "g2"]


def test_master_first_then_rest_in_rank_order():
    plan = attempt_references(ranked(ref("m", "master"), ref("g1"), ref("g2")), 3)
    assert ids(plan) == ["m", "g1", "g2"]


def test_no_master_continues_in_rank_order():
    plan = attempt_references(ranked(ref("g1"), ref("c1", "core"), ref("g2")), 3)
    assert ids(plan) == ["g1", "c1", "g2"]


def test_user_image_counts_as_master():
    plan = attempt_references(ranked(ref("g1"), ref("g2"), ref("user", "user")), 3)
    assert ids(plan) == ["g1", "user", "g2"]


def test_best_ranked_master_is_used_and_other_masters_join_the_rest():
    plan = attempt_references(ranked(ref("g1"), ref("m1", "master"), ref("g2"), ref("m2", "master")), 4)
    assert ids(plan) == ["g1", "m1", "g2", "m2"]


def test_wraps_around_cycling_all_in_rank_order():
    plan = attempt_references(ranked(ref("g1"), ref("g2"), ref("m", "master")), 7)
    assert ids(plan) == ["g1", "m", "g2", "g1", "g2", "m", "g1"]


def test_single_candidate_repeats():
    assert ids(attempt_references(ranked(ref("only")), 3)) == ["only", "only", "only"]


def test_one_attempt_is_the_best():
    assert ids(attempt_references(ranked(ref("g1"), ref("m", "master")), 1)) == ["g1"]


def test_max_attempts_must_be_positive():
    with pytest.raises(ValueError, match="max_attempts"):
        attempt_references([], 0)


def test_ranking_feeds_strategy():
    candidates = [
        ref("m", "master"),
        ref("s1", scene_number=1, quality_score=85),
        ref("core", "core"),
    ]
    plan = attempt_references(rank_references(candidates, NEUTRAL, chain_scene=1), 3)
    assert ids(plan) == ["s1", "m", "core"]


def test_light_at_45_degrees_is_not_a_subject_angle():
    from imageforge.tools.references import reference_features

    assert reference_features("Soft window light from the left at 45 degrees, medium shot").angle == "front"
    assert reference_features("Portrait at a 45-degree angle, studio").angle == "45-degree"


@pytest.mark.parametrize("group", ["close-up", "medium", "full-body", "wide"])
def test_a_reference_recorded_with_a_group_matches_that_group(group):
    """graph.derive records a chained winner's shot type as the group itself."""
    features = ReferenceFeatures(shot_type=group)
    [result] = rank_references([ref("w", shot_type=group)], features)
    assert f"shot type {group} matches +5" in result.reasons


@pytest.mark.parametrize("angle", ["front", "side", "back", "45-degree"])
def test_a_reference_recorded_with_an_angle_matches_that_angle(angle):
    features = ReferenceFeatures(angle=angle)
    [result] = rank_references([ref("w", camera_angle=angle)], features)
    assert f"angle {angle} matches +3" in result.reasons


def test_a_light_from_behind_the_subject_is_not_a_back_view():
    prompt = "Low golden-hour sun from behind the subject at 15 degrees as a warm rim light"
    assert reference_features(prompt).angle == "front"
    assert reference_features("rear view of the car").angle == "back"


def test_wide_angle_lens_is_not_a_wide_shot():
    assert reference_features("wide-angle lens, a woman at the counter").shot_type == "medium"
    assert reference_features("wide shot of the counter").shot_type == "wide"
