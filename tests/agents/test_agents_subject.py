"""Prompts that keep their subject (issue 12, part 2): the offline planner reads what any
concept is about and names it in every scene, and the critique fails a version that lost it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ScriptedChatModel, tool_call_message

from imageforge.agents.heuristics import (
    critique_heuristic,
    enhance_heuristic,
    is_product_concept,
    plan_heuristic,
    scene_subject,
)
from imageforge.agents.planner import PlanDraft, SceneDraft, plan
from imageforge.agents.schemas import ConsistencyMarkers, Critique, CritiqueDraft, DimensionScores, ScenePlan
from imageforge.agents.subject import check_subject, key_terms, names_term, read_subject

LIGHTHOUSE = "A lighthouse keeper's last night before automation"
BENCHMARK_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "subject_concepts.jsonl"


def _benchmark_concepts() -> list[dict]:
    return [json.loads(line) for line in BENCHMARK_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- reading the subject ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concept", "terms", "kind"),
    [
        (LIGHTHOUSE, ("lighthouse", "keeper"), "person"),
        ("The day the old clockmaker stopped all the clocks in town", ("clockmaker",), "person"),
        ("Two astronauts saying goodbye before a one-way mission to Mars", ("astronauts",), "person"),
        ("The final voyage of a wooden fishing boat", ("wooden", "fishing", "boat"), "thing"),
        ("Portrait of a retired jazz trumpeter", ("jazz", "trumpeter"), "person"),
        ("Venice at dawn", ("venice",), "place"),
        ("The night market in Taipei", ("market",), "place"),
        ("A village wedding in the rain", ("village", "wedding"), "event"),
        ("What freedom feels like", ("freedom",), "idea"),
        ("Solitude", ("solitude",), "idea"),
        ("Ein alter Fischer am Hafen im Nebel", ("fischer",), "person"),
        ("Le dernier boulanger du village", ("boulanger",), "person"),
        ("Una abuela cocinando paella para toda la familia", ("abuela",), "person"),
        ("桜の下で眠る猫", ("桜の下で眠る猫",), "thing"),
        (
            "In a small coastal town where the fog never lifts, an elderly violin maker finishes his last violin",
            ("violin", "maker"),
            "person",
        ),
    ],
)
def test_the_subject_is_read_from_the_concepts_own_words(concept, terms, kind):
    subject = read_subject(concept)
    assert subject.terms == terms and subject.kind == kind, subject


def test_the_subject_keeps_the_concepts_article_and_place():
    assert read_subject(LIGHTHOUSE).text == "the lighthouse keeper"
    assert read_subject("A fox and a crow share an evening").text == "the fox and the crow"
    assert read_subject("La vespa rossa di mio nonno").text == "la vespa rossa"
    assert read_subject("The night market in Taipei").where == "in Taipei"
    assert read_subject("Marie Curie in her laboratory").where == "in her laboratory"
    assert read_subject("Venice at dawn").where == ""  # a time, not a place


def test_names_the_subject_means_every_key_term_as_a_whole_word():
    assert names_term("Two lighthouses on the cliff", "lighthouse")
    assert names_term("The keeper's lamp", "keeper")
    assert not names_term("A lighthouse-keeping manual", "keeper")
    assert not names_term("Beekeepers at work", "keeper")
    assert names_term("夜桜の下で眠る猫の写真", "猫")
    check = check_subject('Hero shot of a mug, space for the line "Lighthouse keeper"', "the lighthouse keeper")
    assert not check.kept and check.missing == ["lighthouse", "keeper"]  # quoted copy does not count
    check = check_subject("The lighthouse keeper climbs the stairs at night", "the lighthouse keeper")
    assert check.kept and check.missing == [] and "names" in check.detail
    assert key_terms("the last lighthouse keeper") == ("lighthouse", "keeper")


# --- the planner --------------------------------------------------------------------------


def test_the_lighthouse_concept_is_a_story_about_the_keeper_not_a_product_ad():
    plan = plan_heuristic(LIGHTHOUSE, None, None)
    assert len(plan.scenes) == 4
    assert [s.beat for s in plan.scenes] == ["hook", "build", "reveal", "payoff"]
    for scene in plan.scenes:
        assert names_term(scene.prompt, "lighthouse") and names_term(scene.prompt, "keeper"), scene.prompt
        assert scene.subject == "the lighthouse keeper"
        assert "night" in scene.prompt  # the concept's time of day
        for product_ad in ("light oak", "loft", "hero shot", "tagline", "the line", "night before automation on"):
            assert product_ad not in scene.prompt.lower(), scene.prompt
    assert "automation" in plan.scenes[0].prompt  # the opening scene carries the whole story
    assert plan.markers.setting == "the lighthouse"
    assert "keeper" in plan.markers.characters[0] and plan.markers.brand_keywords == []
    assert "commercial" not in plan.markers.style


@pytest.mark.parametrize(
    ("concept", "product"),
    [
        ("Artisan coffee that starts your morning right", True),
        ("Wireless headphones for deep focus", True),
        ("Handmade leather wallet that lasts a lifetime", True),
        ("A vegan ice cream brand launch", True),
        ("Tech startup product showcase", True),
        (LIGHTHOUSE, False),
        ("A robot learning to paint", False),
        ("The first snowfall over a mountain village", False),
        ("Dragons", False),
    ],
)
def test_only_product_concepts_are_planned_as_advertisements(concept, product):
    assert is_product_concept(concept) is product
    payoff = plan_heuristic(concept, None, None).scenes[-1].prompt
    assert ("Hero shot" in payoff) is product, payoff


@pytest.mark.parametrize(("kind", "opening"), [("place", "Wide"), ("idea", "Wide"), ("event", "Wide")])
def test_beats_suit_the_kind_of_subject(kind, opening):
    concept = {"place": "The night market in Taipei", "idea": "Solitude", "event": "A village wedding in the rain"}[
        kind
    ]
    plan = plan_heuristic(concept, None, 6)
    prompts = [s.prompt for s in plan.scenes]
    assert len(set(prompts)) == 6 and prompts[0].startswith(opening)
    assert not any("hands of" in p for p in prompts)  # a person's beats are for people
    if kind == "place":
        assert all("Taipei" in p for p in prompts)


@pytest.mark.parametrize("item", _benchmark_concepts(), ids=lambda item: item["concept"][:30])
def test_every_planned_scene_of_the_benchmark_set_names_its_subject(item):
    plan = plan_heuristic(item["concept"], None, None)
    for scene in plan.scenes:
        described = scene.prompt.split('"')[0]
        assert all(names_term(described, term) for term in item["subject"]), (item["subject"], scene.prompt)


def test_a_product_scene_without_the_product_has_its_own_subject():
    plan = plan_heuristic("Artisan coffee that starts your morning right", None, 8)
    subjects = {scene_subject(s) for s in plan.scenes}
    assert "artisan coffee" in subjects
    for scene in plan.scenes:
        assert check_subject(scene.prompt, scene_subject(scene)).kept, scene


# --- the critique and the cinematographer -------------------------------------------------


def _scene() -> ScenePlan:
    return plan_heuristic(LIGHTHOUSE, None, None).scenes[1]


def test_a_version_that_lost_the_subject_fails_whatever_its_scores():
    scene, markers = _scene(), plan_heuristic(LIGHTHOUSE, None, None).markers
    good = enhance_heuristic(scene, markers)
    for _ in range(3):
        good = enhance_heuristic(scene, markers, previous=good, critique=critique_heuristic(good, scene, markers))
    kept = critique_heuristic(good, scene, markers)
    assert kept.subject_check is not None and kept.subject_check.kept and kept.overall > 80

    drifted = good.model_copy(update={"prompt": good.prompt.replace("lighthouse keeper", "product")})
    lost = critique_heuristic(drifted, scene, markers)
    assert lost.subject_check is not None and not lost.subject_check.kept
    assert lost.subject_kept is False and lost.overall == 0.0
    assert lost.scores.cinematography > 80  # the other scores are still reported
    assert lost.critique.startswith("Subject lost")
    assert "the lighthouse keeper" in lost.suggestions[0]


def test_the_overall_is_zero_when_the_llm_says_the_subject_is_lost():
    scores = DimensionScores(completeness=95, specificity=95, professionalism=95, cinematography=95, brand_alignment=95)
    assert CritiqueDraft(scores=scores, critique="").subject_kept is True
    assert Critique(scores=scores, critique="").overall == 95.0
    assert Critique(scores=scores, critique="", subject_kept=False).overall == 0.0


def test_the_cinematographer_puts_a_lost_subject_back():
    scene, markers = _scene(), ConsistencyMarkers()
    previous = enhance_heuristic(scene, markers).model_copy(
        update={"prompt": "A product on a light oak table, 85mm lens at f/1.8.", "source": "llm"}
    )
    critique = critique_heuristic(previous, scene, markers)
    assert critique.overall == 0.0
    revised = enhance_heuristic(scene, markers, previous=previous, critique=critique, iteration=2)
    assert revised.prompt.startswith("A product on a light oak table")  # the LLM's words are kept
    assert check_subject(revised.prompt, "the lighthouse keeper").kept
    assert "subject back" in revised.addressed
    assert critique_heuristic(revised, scene, markers).overall > 0


def test_a_bare_scene_is_checked_against_its_own_leading_noun_phrase():
    scene = ScenePlan(scene_number=1, prompt="A nice, beautiful mug of coffee on a table in the morning")
    assert scene_subject(scene) == "the mug of coffee"  # read past the vague words
    enhanced = enhance_heuristic(scene, ConsistencyMarkers())
    assert critique_heuristic(enhanced, scene, ConsistencyMarkers()).subject_check.kept


async def test_the_llm_planner_passes_each_scenes_subject_on():
    draft = PlanDraft(
        scenes=[SceneDraft(prompt="The keeper climbs the spiral stairs", subject="the lighthouse keeper")],
        markers=ConsistencyMarkers(),
    )
    llm = ScriptedChatModel.from_replies([tool_call_message(draft, name="PlanDraft")])
    storyboard, _ = await plan(LIGHTHOUSE, None, 1, llm=llm)
    assert storyboard.scenes[0].subject == "the lighthouse keeper"
    assert scene_subject(storyboard.scenes[0]) == "the lighthouse keeper"
