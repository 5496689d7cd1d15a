"""The one cinematography vocabulary: its data loads, and its four readers agree on it.

The rubric (agents.rubric), the cinematographer (agents.cinematography), reference ranking
(tools.references) and the sketch (tools.sketch) once kept four disagreeing word lists;
these tests hold them to the one list in agents/data/vocabulary.toml.
"""

from __future__ import annotations

import ast
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from imageforge.agents import cinematography, rubric
from imageforge.agents.cinematography import lighting, plan_shot
from imageforge.agents.rubric import analyze_prompt
from imageforge.agents.schemas import ConsistencyMarkers, ScenePlan
from imageforge.agents.themes import Location, Theme, theme_book
from imageforge.agents.vocabulary import (
    CameraAngle,
    Composition,
    Lens,
    LightDirection,
    Shot,
    Vocabulary,
    find_terms,
    normalise,
    vocabulary,
)
from imageforge.tools import references
from imageforge.tools.references import classify_angle, classify_shot, reference_features
from imageforge.tools.sketch import DEFAULT_SHOT, parse_frame

ROOT = Path(__file__).resolve().parents[2]
VOCABULARY = vocabulary()
SHOT_PHRASES = [(shot, phrase) for shot in VOCABULARY.shots for phrase in shot.phrases]


# --- data files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vocabulary.toml", "themes.toml", "lighting.toml"])
def test_data_files_ship_as_package_data(name):
    data = resources.files("imageforge.agents").joinpath("data", name)
    assert data.is_file()
    assert tomllib.loads(data.read_text(encoding="utf-8"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["imageforge.agents"]


def test_vocabulary_loads_into_models():
    assert VOCABULARY is vocabulary()  # loaded once
    assert all(isinstance(s, Shot) for s in VOCABULARY.shots) and len(VOCABULARY.shots) > 20
    assert all(isinstance(a, CameraAngle) for a in VOCABULARY.angles)
    assert {s.group for s in VOCABULARY.shots} == {"close-up", "medium", "full-body", "wide"}
    assert {a.view for a in VOCABULARY.angles} >= {"front", "side", "back", "45-degree"}


def test_themes_load_into_models():
    book = theme_book()
    assert book is theme_book()
    assert [t.name for t in book.themes][:2] == ["coffee", "tech"]
    assert all(isinstance(t, Theme) and isinstance(t.location, Location) for t in book.themes)
    assert book.fallback.name == "general"
    assert book.locations["café"] == book.locations["coffee shop"]
    assert book.people["women"].role == "woman" and book.people["family"].plural
    assert ("sunset", "golden hour") in book.times


def test_every_time_of_day_a_theme_can_name_has_lighting():
    times = {canonical for _, canonical in theme_book().times}
    times |= {t.default_time for t in (*theme_book().themes, theme_book().fallback)}
    assert times <= set(lighting())
    assert lighting()["studio"].kelvins == (5500,)


def test_a_phrase_with_two_meanings_is_refused():
    text = resources.files("imageforge.agents").joinpath("data", "vocabulary.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    data["lens"].append({"name": "wide shot lens", "phrases": ["Wide-Shot"]})
    with pytest.raises(ValidationError, match="wide shot"):
        Vocabulary.model_validate(data)


def test_vocabulary_is_a_leaf_and_the_only_agents_module_tools_import():
    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert not {m for m in imports(ROOT / "agents" / "vocabulary.py") if m.startswith("imageforge")}
    from_tools = {m for p in (ROOT / "tools").glob("*.py") for m in imports(p) if m.startswith("imageforge.agents")}
    assert from_tools <= {"imageforge.agents.vocabulary"}


# --- the four readers agree -----------------------------------------------------------------


@pytest.mark.parametrize(("shot", "phrase"), SHOT_PHRASES, ids=[p for _, p in SHOT_PHRASES])
def test_every_shot_phrase_means_one_shot_to_every_reader(shot, phrase):
    prompt = f"A {phrase} of a ceramic mug"
    assert analyze_prompt(prompt).shot_type == [shot.name]
    assert classify_shot(prompt) == shot.group == reference_features(prompt).shot_type
    frame = parse_frame(prompt)
    assert (frame.shot_type, frame.subject_scale) == (shot.name, shot.scale)


@pytest.mark.parametrize(
    "prompt",
    ["wide angle", "A wide-angle shot of a woman at the counter", "Shot on a wide angle lens, eye-level"],
)
def test_wide_angle_is_a_lens_never_a_shot(prompt):
    analysis = analyze_prompt(prompt)
    assert "wide-angle" in analysis.lens and analysis.shot_type == []
    assert classify_shot(prompt) is None and reference_features(prompt).shot_type == "medium"
    assert parse_frame(prompt).shot_type == DEFAULT_SHOT


def test_the_cinematographer_reads_wide_angle_as_a_lens_choice():
    markers = ConsistencyMarkers()
    plain = plan_shot(ScenePlan(scene_number=1, prompt="A woman at the kitchen counter"), markers)
    wide = plan_shot(ScenePlan(scene_number=1, prompt="A woman at the kitchen counter, wide angle"), markers)
    assert wide.shot_class == plain.shot_class == "human"  # not an establishing shot
    assert wide.lens == "24mm wide-angle" != plain.lens
    assert "wide-angle" in analyze_prompt(f"{wide.lens} lens").lens


SCENES = [
    ScenePlan(scene_number=1, prompt="Wide establishing view of the harbour at dawn", beat="hook"),
    ScenePlan(scene_number=2, prompt="Close-up of coffee being poured into a mug", beat="build"),
    ScenePlan(scene_number=3, prompt="Flat lay of the beans and a mug, from above", beat="build"),
    ScenePlan(scene_number=4, prompt="Close portrait of a woman smiling", beat="reveal"),
    ScenePlan(scene_number=5, prompt="Over-the-shoulder view of a barista at work", beat="reveal"),
    ScenePlan(scene_number=6, prompt="Hero shot of the bottle on a plinth", beat="payoff"),
    ScenePlan(scene_number=7, prompt="A runner sprinting along the ridge", beat=""),
    ScenePlan(scene_number=8, prompt="A quiet moment", beat=""),
]


@pytest.mark.parametrize("scene", SCENES, ids=[s.prompt for s in SCENES])
def test_what_the_cinematographer_writes_every_reader_reads_alike(scene):
    shot = plan_shot(scene, ConsistencyMarkers())
    written = f"{shot.shot_type}, {shot.camera_angle} camera angle, {shot.lens} lens at {shot.aperture}"
    [named] = [m.term for m in find_terms(shot.shot_type)]
    assert isinstance(named, Shot)
    analysis = analyze_prompt(written)
    assert analysis.shot_type == [named.name]
    assert analysis.camera_angle == [VOCABULARY.angle(shot.camera_angle).name]
    assert classify_shot(written) == named.group
    assert parse_frame(written).shot_type == named.name


def test_the_cinematographer_covers_every_class():
    classes = {plan_shot(scene, ConsistencyMarkers()).shot_class for scene in SCENES}
    assert classes == {"establishing", "detail", "human", "hero", "action", "general"}


@pytest.mark.parametrize("angle", VOCABULARY.angles, ids=[a.name for a in VOCABULARY.angles])
def test_every_angle_phrase_reads_alike(angle):
    for phrase in angle.phrases:
        prompt = f"A ceramic mug, {phrase}"
        assert analyze_prompt(prompt).camera_angle == [angle.name]
        assert classify_angle(prompt) == angle.view
        frame = parse_frame(prompt)
        if angle.horizon is not None:
            assert (frame.camera_angle, frame.horizon, frame.tilted) == (angle.name, angle.horizon, angle.tilt)
        else:
            assert frame.camera_angle == "eye-level"


@pytest.mark.parametrize("lens", VOCABULARY.lenses, ids=[lens.name for lens in VOCABULARY.lenses])
def test_every_lens_phrase_is_a_lens_and_sets_a_shot_only_by_implication(lens):
    for phrase in lens.phrases:
        prompt = f"A ceramic mug, {phrase}"
        assert analyze_prompt(prompt).lens == [lens.name]
        assert analyze_prompt(prompt).shot_type == []
        implied = VOCABULARY.shot(lens.shot) if lens.shot else None
        assert parse_frame(prompt).shot_type == (implied.name if implied else DEFAULT_SHOT)
        assert classify_shot(prompt) == (implied.group if implied else None)


def test_light_words_with_a_side_light_the_sketch_from_that_side():
    for light in VOCABULARY.light_directions:
        for phrase in light.phrases:
            assert analyze_prompt(f"A mug, {phrase}").light_direction == [light.name]
            if light.side is not None:
                assert parse_frame(f"A mug, {phrase}").light_direction == light.side


def test_composition_guides_reach_the_sketch():
    for composition in VOCABULARY.compositions:
        for phrase in composition.phrases:
            assert analyze_prompt(f"A mug, {phrase}").composition == [composition.name]
            if composition.guide is not None:
                assert parse_frame(f"A mug, {phrase}").composition == (composition.guide,)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("overhead light on a desk", LightDirection, "top light"),  # a light, not a camera
        ("shot on a 100mm macro lens", Lens, "macro"),
        ("macro close-up of the beans", Shot, "macro close-up"),  # a shot, not the lens
        ("low-key lighting", None, "low-key"),  # not "key light"
        ("rule-of-thirds framing", Composition, "rule of thirds"),
    ],
)
def test_the_longest_phrase_wins_across_kinds(text, kind, name):
    [match] = find_terms(text)
    assert match.term.name == name
    if kind is not None:
        assert isinstance(match.term, kind)


def test_normalise_reads_spellings_alike():
    assert normalise("Close-Up") == normalise("close up") == normalise("close_up") == "close up"
    assert normalise("Bird’s-eye  view") == "bird's eye view"


def test_renamed_names_mean_one_thing():
    assert not hasattr(cinematography, "classify_shot")
    assert hasattr(cinematography, "classify_scene")
    assert "analyze_prompt" in rubric.__all__ and "PromptAnalysis" in rubric.__all__
    assert "analyze_prompt" not in references.__all__ and "PromptAnalysis" not in references.__all__
    assert "reference_features" in references.__all__ and "classify_shot" in references.__all__
