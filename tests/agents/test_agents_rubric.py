"""The prompt engineer's rubric: detection, monotone scores, named gaps, penalties."""

from __future__ import annotations

from itertools import pairwise

import pytest

from imageforge.agents.rubric import (
    ELEMENT_LABELS,
    analyze_prompt,
    missing_element_keys,
    missing_elements,
    score_prompt,
)
from imageforge.agents.schemas import ConsistencyMarkers, weighted_overall

# A production brief, one element per sentence; each step below adds one more.
SENTENCES = [
    "A woman holding a ceramic cup in a kitchen in the early morning.",
    "Medium close-up shot.",
    "Eye-level camera angle.",
    "50mm lens at f/1.8.",
    "Soft window light from the left at 45 degrees, 5200K.",
    "Rule of thirds.",
    "Palette: cream, espresso brown, soft gold.",
    "Mood: calm and inviting.",
    "Style: warm editorial lifestyle photography.",
]
STEPS = [
    "a cup",
    "A woman holding a cup",
    "A woman holding a ceramic cup in a kitchen",
    *(" ".join(SENTENCES[:k]) for k in range(1, len(SENTENCES) + 1)),
]

MARKERS = ConsistencyMarkers(
    characters=["a woman in her early thirties with chestnut brown hair, wearing a cream knit sweater"],
    palette=["espresso brown", "cream", "caramel"],
    setting="a modern minimalist kitchen with white oak counters",
    style="warm editorial lifestyle photography",
    brand_keywords=["artisan", "slow ritual"],
)


def overall(prompt: str, markers: ConsistencyMarkers | None = None) -> float:
    return weighted_overall(score_prompt(prompt, markers))


def test_scores_never_fall_and_overall_rises_as_elements_are_added():
    scores = [score_prompt(p).model_dump() for p in STEPS]
    for before, after in pairwise(scores):
        for dimension in before:
            assert after[dimension] >= before[dimension], dimension
    overalls = [overall(p) for p in STEPS]
    assert overalls == sorted(overalls)
    assert len(set(overalls)) == len(overalls), "every added element should earn points"


def test_bare_prompt_scores_low_and_complete_brief_scores_high():
    assert overall("a cup") < 15
    assert overall(STEPS[-1]) >= 85


def test_missing_elements_are_named_per_dimension_and_disappear_once_added():
    missing = missing_elements("Woman reaching for a coffee mug")
    assert ELEMENT_LABELS["lens"] in missing["cinematography"]
    assert ELEMENT_LABELS["camera_angle"] in missing["cinematography"]
    assert ELEMENT_LABELS["time_of_day"] in missing["completeness"]
    assert ELEMENT_LABELS["color_temperature"] in missing["specificity"]
    assert ELEMENT_LABELS["action"] not in missing["completeness"]

    fixed = missing_elements("Woman reaching for a coffee mug, eye-level camera angle, 50mm lens, at dawn")
    assert ELEMENT_LABELS["lens"] not in fixed["cinematography"]
    assert ELEMENT_LABELS["camera_angle"] not in fixed["cinematography"]
    assert ELEMENT_LABELS["time_of_day"] not in fixed["completeness"]


def test_a_complete_prompt_misses_nothing():
    prompt = STEPS[-1] + (
        " Sharp focus on the cup, white bounce fill. Textures: ceramic, oak, linen. Wearing a cream knit sweater."
    )
    assert missing_elements(prompt) == {d: [] for d in missing_elements(prompt)}


def test_vague_words_are_penalised_and_named():
    clean = "A ceramic cup on an oak table, eye-level camera angle, 50mm lens."
    vague = "A nice beautiful ceramic cup on a good oak table, eye-level camera angle, 50mm lens."
    assert score_prompt(vague).specificity < score_prompt(clean).specificity
    assert score_prompt(vague).professionalism < score_prompt(clean).professionalism
    missing = missing_elements(vague)
    assert "replace vague words: nice, beautiful, good" in missing["specificity"]


def test_quoted_tagline_is_copy_not_vague_description():
    prompt = 'Hero shot of the mug, clean space above for the line "Great coffee, good mornings".'
    assert analyze_prompt(prompt).vague == []


def test_tag_soup_is_penalised():
    plain = "A ceramic cup on an oak table, eye-level camera angle, 50mm lens, soft window light from the left."
    soup = plain + " 8k, masterpiece, best quality."
    assert analyze_prompt(soup).tag_soup == ["8k", "masterpiece", "best quality"]
    assert score_prompt(soup).professionalism < score_prompt(plain).professionalism


@pytest.mark.parametrize(
    ("prompt", "conflict"),
    [
        ("A street in the early morning at night, wide shot", "early morning vs night"),
        ("Portrait, shallow depth of field with deep focus", "shallow vs deep depth of field"),
        ("Top-down view from a low angle", "top-down vs low angle"),
        ("Macro close-up in a wide establishing shot", "macro close-up vs wide establishing shot"),
    ],
)
def test_conflicting_terms_are_detected_and_cost_points(prompt, conflict):
    analysis = analyze_prompt(prompt)
    assert conflict in analysis.conflicts
    assert any("resolve conflicting terms" in item for item in missing_elements(prompt)["cinematography"])


def test_conflict_lowers_cinematography():
    base = "Wide establishing shot, eye-level camera angle, 24mm lens at f/8, deep depth of field, city street at night"
    assert score_prompt(base + ", shallow depth of field").cinematography < score_prompt(base).cinematography


def test_spelling_variants_are_detected_alike():
    for variant in ("close-up", "close up", "closeup"):
        assert analyze_prompt(f"A {variant} of a mug").shot_type == ["close-up"]
    assert analyze_prompt("rule-of-thirds framing").composition == ["rule of thirds"]
    a = analyze_prompt("85 mm lens at f/ 1.8, 3200 K")
    assert a.lens_mm == [85] and a.f_numbers == [1.8] and a.color_temperature == [3200]


def test_brand_alignment_rises_with_marker_coverage_and_names_what_is_missing():
    base = "A woman holding a mug in the kitchen"
    with_palette = base + ", espresso brown and cream palette"
    with_more = with_palette + ", caramel accents, warm editorial lifestyle photography, artisan slow ritual"
    scores = [score_prompt(p, MARKERS).brand_alignment for p in (base, with_palette, with_more)]
    assert scores == sorted(scores) and scores[0] < scores[1] < scores[2]
    missing = missing_elements(with_palette, MARKERS)["brand_alignment"]
    assert "the storyboard palette (caramel)" in missing
    assert "the brand keywords (artisan, slow ritual)" in missing


def test_brand_alignment_without_markers_judges_palette_mood_and_style():
    assert score_prompt("A mug").brand_alignment == 0
    assert score_prompt("A mug, cream and brown palette, calm mood, editorial photography").brand_alignment == 100
    assert missing_element_keys("A mug")["brand_alignment"] == ["palette", "mood", "style"]


def test_marker_fields_left_empty_do_not_cost_points():
    only_palette = ConsistencyMarkers(palette=["cream", "espresso brown"])
    assert score_prompt("A mug in cream and espresso brown", only_palette).brand_alignment == 100
