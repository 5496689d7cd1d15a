"""The offline agents: a concrete plan, scene-suited enhancements, a critique loop that converges."""

from __future__ import annotations

from itertools import pairwise

import pytest

from imageforge.agents.heuristics import (
    critique_heuristic,
    enhance_heuristic,
    plan_heuristic,
    scenes_for_duration,
)
from imageforge.agents.rubric import analyze_prompt
from imageforge.agents.schemas import ConsistencyMarkers, Critique, DimensionScores, EnhancedPrompt, ScenePlan

COFFEE = "Artisan coffee that starts your morning right"
CONCEPTS = [
    COFFEE,
    "Luxury watch advertisement with dramatic lighting",
    "Tech startup product showcase",
    "Running shoes for night runners in the city",
    "Organic skincare for sensitive skin",
    "Handmade leather wallet for travellers",
]


def scene(prompt: str, beat: str = "", number: int = 1) -> ScenePlan:
    return ScenePlan(scene_number=number, prompt=prompt, beat=beat)


def run_loop(s: ScenePlan, markers: ConsistencyMarkers, max_iterations: int = 4) -> list[Critique]:
    previous = critique = None
    critiques = []
    for iteration in range(1, max_iterations + 1):
        previous = enhance_heuristic(s, markers, previous=previous, critique=critique, iteration=iteration)
        critique = critique_heuristic(previous, s, markers)
        critiques.append(critique)
        if critique.overall >= 85:
            break
    return critiques


# --- planner ------------------------------------------------------------------------------


def test_coffee_concept_at_15_seconds_gives_four_concrete_scenes_with_markers():
    plan = plan_heuristic(COFFEE, 15, None)
    assert [s.scene_number for s in plan.scenes] == [1, 2, 3, 4]
    assert [s.beat for s in plan.scenes] == ["hook", "build", "reveal", "payoff"]
    assert sum(s.duration_s for s in plan.scenes) == pytest.approx(15)
    for s in plan.scenes:
        assert "coffee" in s.prompt.lower() or "mug" in s.prompt.lower()
        assert "morning" in s.prompt.lower()
        assert analyze_prompt(s.prompt).vague == []
    assert len({s.prompt for s in plan.scenes}) == 4
    assert "wide" in plan.scenes[0].prompt.lower() and "close-up" in plan.scenes[1].prompt.lower()
    markers = plan.markers
    assert {"espresso brown", "cream"} <= set(markers.palette)
    assert markers.characters and markers.setting and markers.style
    assert "artisan" in markers.brand_keywords
    assert plan.source == "heuristic" and plan.target_duration_s == 15
    for s in plan.scenes:
        for cid in s.character_ids:
            index = int(cid.removeprefix("character_"))
            assert 1 <= index <= len(markers.characters)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(None, 4), (3, 1), (7.5, 2), (10, 3), (15, 4), (30, 8), (60, 12), (600, 12)],
)
def test_scene_count_follows_duration(duration, expected):
    assert scenes_for_duration(duration) == expected


def test_num_scenes_overrides_duration_and_long_plans_stay_distinct():
    plan = plan_heuristic(COFFEE, 15, 12)
    assert len(plan.scenes) == 12
    assert len({s.prompt for s in plan.scenes}) == 12
    assert plan.scenes[0].beat == "hook" and plan.scenes[-1].beat == "payoff"
    assert len(plan_heuristic(COFFEE, None, 1).scenes) == 1


@pytest.mark.parametrize(
    ("concept", "expected_colours"),
    [
        ("Tech startup product showcase", {"cobalt blue"}),
        ("Luxury watch advertisement", {"deep black", "polished gold"}),
        ("Hiking backpack for forest trails", {"forest green"}),
        ("Handmade leather wallet", {"warm white", "charcoal"}),
    ],
)
def test_markers_follow_the_concepts_theme(concept, expected_colours):
    assert expected_colours <= set(plan_heuristic(concept, 15, None).markers.palette)


def test_time_and_place_come_from_the_concepts_words():
    plan = plan_heuristic("Espresso bar nights in the city", 15, None)
    assert all("at night" in s.prompt for s in plan.scenes)
    assert "bar" in plan.markers.setting


@pytest.mark.parametrize(
    ("concept", "duration", "num_scenes"),
    [
        ("", 15, None),
        ("   ", 15, None),
        (COFFEE, 0, None),
        (COFFEE, -3, None),
        (COFFEE, 15, 0),
        (COFFEE, 15, 13),
    ],
)
def test_plan_rejects_bad_input_naming_the_argument(concept, duration, num_scenes):
    with pytest.raises(ValueError, match=r"concept|target_duration_s|num_scenes"):
        plan_heuristic(concept, duration, num_scenes)


def test_agents_are_deterministic():
    assert plan_heuristic(COFFEE, 15, None) == plan_heuristic(COFFEE, 15, None)
    plan = plan_heuristic(COFFEE, 15, None)
    s = plan.scenes[2]
    first = enhance_heuristic(s, plan.markers)
    assert first == enhance_heuristic(s, plan.markers)
    critique = critique_heuristic(first, s, plan.markers)
    assert critique == critique_heuristic(first, s, plan.markers)
    second = enhance_heuristic(s, plan.markers, previous=first, critique=critique, iteration=2)
    assert second == enhance_heuristic(s, plan.markers, previous=first, critique=critique, iteration=2)


# --- cinematographer ----------------------------------------------------------------------


def test_night_and_morning_scenes_get_different_light():
    markers = ConsistencyMarkers()
    night = enhance_heuristic(scene("A woman sipping coffee by the window at night"), markers)
    morning = enhance_heuristic(scene("A woman sipping coffee by the window in the morning"), markers)
    assert night.color_temperature_k == 3200
    assert "practical" in night.lighting
    assert 4500 <= morning.color_temperature_k <= 5600
    assert "window light from the left" in morning.lighting
    assert night.time_of_day == "night" and morning.time_of_day == "early morning"
    assert "3200K" in night.prompt and f"{morning.color_temperature_k}K" in morning.prompt
    assert "daylight" in night.negative_prompt


def test_product_close_up_and_establishing_beats_get_different_lenses():
    detail = enhance_heuristic(
        scene("Close-up of coffee pouring into a ceramic mug, steam rising", "build"),
        ConsistencyMarkers(),
    )
    wide = enhance_heuristic(scene("Wide view of a sunlit kitchen in the morning", "hook"), ConsistencyMarkers())
    assert (detail.shot_type, detail.lens, detail.aperture) == (
        "macro close-up",
        "100mm macro",
        "f/2.8",
    )
    assert (wide.shot_type, wide.lens, wide.aperture) == ("wide establishing shot", "24mm", "f/8")
    assert "100mm macro lens at f/2.8" in detail.prompt and "24mm lens at f/8" in wide.prompt


def test_human_and_hero_beats_get_portrait_and_hero_framing():
    human = enhance_heuristic(scene("A woman smiles as she takes the first sip", "reveal"), ConsistencyMarkers())
    hero = enhance_heuristic(scene("The mug on the counter with space for the tagline", "payoff"), ConsistencyMarkers())
    assert human.shot_type == "medium close-up" and human.aperture in ("f/1.8", "f/2")
    assert "distorted hands" in human.negative_prompt
    assert hero.shot_type == "hero product shot" and hero.camera_angle == "low angle"
    assert "negative space" in hero.composition


def test_enhancement_reads_as_a_brief_without_vague_words_or_conflicts():
    plan = plan_heuristic(COFFEE, 15, None)
    enhanced = enhance_heuristic(scene("A nice, beautiful mug of coffee on a table in the morning"), plan.markers)
    analysis = analyze_prompt(enhanced.prompt)
    assert analysis.vague == [] and analysis.conflicts == []
    assert "removed vague words" in enhanced.addressed
    assert enhanced.prompt.count(".") >= 3 and enhanced.source == "heuristic"
    assert enhanced.negative_prompt


def test_critique_names_what_is_missing_with_concrete_suggestions():
    plan = plan_heuristic(COFFEE, 15, None)
    s = plan.scenes[1]
    first = enhance_heuristic(s, plan.markers)
    critique = critique_heuristic(first, s, plan.markers)
    weakest = critique.scores.weakest()
    assert critique.critique.startswith(f"Weakest dimension: {weakest.replace('_', ' ')}")
    assert "storyboard palette" in critique.critique
    assert any("espresso brown" in suggestion for suggestion in critique.suggestions)
    assert critique.source == "heuristic"


def test_bare_prompt_scores_low_and_the_critique_asks_for_camera_and_light():
    bare = EnhancedPrompt(
        prompt="a cup",
        shot_type="",
        camera_angle="",
        lens="",
        aperture="",
        lighting="",
        color_temperature_k=5000,
        composition="",
    )
    critique = critique_heuristic(bare, scene("a cup"), ConsistencyMarkers())
    assert critique.overall < 15
    assert "lens" in critique.critique and "camera angle" in critique.critique
    assert any("lens" in s for s in critique.suggestions)


def test_next_pass_answers_the_weakest_dimension_first():
    plan = plan_heuristic(COFFEE, 15, None)
    s = plan.scenes[2]
    first = enhance_heuristic(s, plan.markers)
    critique = critique_heuristic(first, s, plan.markers)
    weakest = critique.scores.weakest()
    second = enhance_heuristic(s, plan.markers, previous=first, critique=critique, iteration=2)
    assert second.addressed.startswith(f"weakest dimension {weakest}")
    after = critique_heuristic(second, s, plan.markers)
    assert getattr(after.scores, weakest) > getattr(critique.scores, weakest)


def test_an_llm_style_critique_is_answered_through_its_suggestions():
    s = scene("A woman reading by the window in the morning")
    first = enhance_heuristic(s, ConsistencyMarkers())
    assert "Rule of thirds" not in first.prompt
    critique = Critique(
        scores=DimensionScores(
            completeness=90,
            specificity=90,
            professionalism=90,
            cinematography=60,
            brand_alignment=90,
        ),
        critique="No composition rule.",
        suggestions=["Add a composition rule such as the rule of thirds."],
        source="llm",
    )
    second = enhance_heuristic(s, ConsistencyMarkers(), previous=first, critique=critique, iteration=2)
    assert "rule of thirds" in second.prompt.lower()
    assert "cinematography" in second.addressed


def test_an_llm_written_previous_prompt_is_kept_and_extended():
    s = scene("A woman reading by the window in the morning")
    previous = enhance_heuristic(s, ConsistencyMarkers()).model_copy(
        update={
            "prompt": "Reader curled in an armchair by a tall window, morning, eye-level camera angle.",
            "source": "llm",
        }
    )
    critique = critique_heuristic(previous, s, ConsistencyMarkers())
    revised = enhance_heuristic(s, ConsistencyMarkers(), previous=previous, critique=critique, iteration=2)
    assert revised.prompt.startswith("Reader curled in an armchair by a tall window")
    assert critique_heuristic(revised, s, ConsistencyMarkers()).overall > critique.overall


@pytest.mark.parametrize("concept", CONCEPTS)
def test_critique_loop_improves_and_is_approved_within_four_iterations(concept):
    plan = plan_heuristic(concept, 15, None)
    for s in plan.scenes:
        critiques = run_loop(s, plan.markers)
        overalls = [c.overall for c in critiques]
        assert 40 <= overalls[0] < 85, (s.prompt, overalls)
        assert all(b > a for a, b in pairwise(overalls)), (s.prompt, overalls)
        assert overalls[-1] >= 85, (s.prompt, overalls)
        assert len(overalls) in (2, 3, 4)


@pytest.mark.parametrize(
    "prompt",
    [
        "a cup",
        "Woman reaching for coffee mug",
        "City skyline at dusk",
        "Friends laughing around a campfire on the beach",
    ],
)
@pytest.mark.parametrize("with_markers", [False, True])
def test_loop_also_converges_for_bare_user_scenes(prompt, with_markers):
    markers = plan_heuristic(COFFEE, 15, None).markers if with_markers else ConsistencyMarkers()
    overalls = [c.overall for c in run_loop(scene(prompt), markers)]
    assert overalls[0] < 85 and overalls[-1] >= 85
    assert all(b > a for a, b in pairwise(overalls))


def test_enhance_rejects_iteration_zero():
    with pytest.raises(ValueError, match="iteration"):
        enhance_heuristic(scene("a cup"), ConsistencyMarkers(), iteration=0)
