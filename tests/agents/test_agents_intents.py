"""The offline assistant's intent parser, and the pure settings and prompt helpers its tools use."""

from __future__ import annotations

import pytest

from imageforge.agents.assistant import (
    ChangeSettingsArgs,
    ExplainWinnerArgs,
    RefineSceneArgs,
    ReportStatusArgs,
    StartStoryboardArgs,
    amend_prompt,
    capabilities,
    load_assistant_prompt,
)
from imageforge.agents.intents import parse_message, parse_number, parse_ordinal
from imageforge.graph.settings_change import (
    ADJUST_STEP,
    SettingsChangeError,
    apply_settings_change,
    describe_change,
    effective_settings,
)

SCHEMAS = {
    "start_storyboard": StartStoryboardArgs,
    "change_settings": ChangeSettingsArgs,
    "refine_scene": RefineSceneArgs,
    "explain_winner": ExplainWinnerArgs,
    "report_status": ReportStatusArgs,
}


def calls(message: str) -> list[tuple[str, dict]]:
    parsed = parse_message(message)
    for call in parsed.calls:  # every call must be valid input for its tool
        SCHEMAS[call.name].model_validate(call.args)
    return [(call.name, call.args) for call in parsed.calls]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6", 6),
        ("six", 6),
        ("Six", 6),
        ("fifteen", 15),
        ("twenty-five", 25),
        ("twenty five", 25),
        ("forty", 40),
        ("2.5", 2.5),
        ("3.0", 3),
    ],
)
def test_numbers_in_digits_and_words(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "many", "six-teen", "twenty-ten"])
def test_what_is_not_a_number(text):
    assert parse_number(text) is None


def test_ordinals():
    assert [parse_ordinal(w) for w in ("first", "second", "3rd", "12th", "twentieth", "most")] == [
        1,
        2,
        3,
        12,
        20,
        None,
    ]


# Starting a storyboard ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "make a 15 second storyboard about artisan coffee",
            {"description": "artisan coffee", "target_duration_s": 15.0},
        ),
        (
            "Make a fifteen-second storyboard about Artisan Coffee",
            {"description": "Artisan Coffee", "target_duration_s": 15.0},
        ),
        (
            "create a storyboard about artisan coffee with six scenes",
            {"description": "artisan coffee", "num_scenes": 6},
        ),
        ("make a 1 minute ad for a bakery", {"description": "a bakery", "target_duration_s": 60.0}),
        ("make an artisan coffee storyboard", {"description": "artisan coffee"}),
        (
            "storyboard: luxury watch with dramatic lighting",
            {"description": "luxury watch with dramatic lighting"},
        ),
        # Loose settings words stay part of the subject inside a description.
        ("storyboard about a square coffee table", {"description": "a square coffee table"}),
    ],
)
def test_starting_a_storyboard(message, expected):
    assert calls(message) == [("start_storyboard", expected)]


def test_settings_inside_a_start_request_come_first_and_leave_the_description():
    assert calls(
        "Make a storyboard: Artisan coffee that starts your morning right, 15 seconds, 6 variations, seed 7"
    ) == [
        ("change_settings", {"num_variations": 6, "seed": 7}),
        (
            "start_storyboard",
            {
                "description": "Artisan coffee that starts your morning right",
                "target_duration_s": 15.0,
            },
        ),
    ]
    assert calls("I want a 20s commercial for luxury perfume in 4:5") == [
        ("change_settings", {"aspect_ratio": "4:5"}),
        ("start_storyboard", {"description": "luxury perfume", "target_duration_s": 20.0}),
    ]


def test_a_start_request_without_a_subject_asks_for_one():
    parsed = parse_message("make a storyboard")
    assert parsed.kind == "clarify" and not parsed.calls
    assert "What should the storyboard be about?" in parsed.question


# Settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("use 6 variations", {"num_variations": 6}),
        ("use six variations", {"num_variations": 6}),
        ("8 images per scene", {"num_variations": 8}),
        ("no more than 2 iterations", {"max_enhancement_iterations": 2}),
        ("at most three enhancement rounds", {"max_enhancement_iterations": 3}),
        ("be stricter", {"adjust": "stricter"}),
        ("please be more lenient", {"adjust": "more_lenient"}),
        ("turn on strict mode", {"strict": True}),
        ("strict mode off", {"strict": False}),
        ("4:5 portrait", {"aspect_ratio": "4:5"}),
        ("widescreen", {"aspect_ratio": "16:9"}),
        ("square", {"aspect_ratio": "square"}),
        ("seed 42", {"seed": 42}),
        ("use a random seed", {"random_seed": True}),
        ("quality threshold 50", {"quality_threshold": 50}),
        ("consistency at least 60", {"consistency_threshold": 60}),
        ("disable the consistency check", {"consistency_threshold": 0}),
        ("approval threshold 90", {"approval_threshold": 90}),
        ("at most 3 retries", {"max_retries": 3}),
        ("no retries", {"max_retries": 0}),
        ("2 attempts", {"max_retries": 1}),
        ("768px", {"resolution": 768}),
        # Out of range values are passed on: the tool explains the range.
        ("use 40 variations", {"num_variations": 40}),
        ("use 2.5 variations", {"num_variations": 2.5}),
        ("9:16", {"aspect_ratio": "9:16"}),
        # Several at once.
        (
            "use 6 variations, seed 42 and no more than 2 iterations",
            {"num_variations": 6, "seed": 42, "max_enhancement_iterations": 2},
        ),
    ],
)
def test_settings_in_words(message, args):
    assert calls(message) == [("change_settings", args)]


def test_asking_for_the_settings_shows_them():
    assert calls("what are my settings?") == [("change_settings", {})]


def test_a_settings_change_with_a_status_question_does_both():
    assert calls("use 6 variations, and how is it going?") == [
        ("change_settings", {"num_variations": 6}),
        ("report_status", {}),
    ]


# Refining -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "scene", "instruction"),
    [
        ("make scene 2 moodier, at night", 2, "moodier, at night"),
        ("Make scene two moodier, at night.", 2, "moodier, at night"),
        ("refine scene 3: add rain", 3, "add rain"),
        ("change scene 1 to a beach at sunset", 1, "a beach at sunset"),
        ("in scene 2, add a dog", 2, "add a dog"),
        ("make it moodier in scene 2", 2, "moodier"),
        ("scene four should be at night", 4, "at night"),
        ("make the second scene warmer", 2, "warmer"),
        ("redo scene 2", 2, ""),
    ],
)
def test_refining_a_scene(message, scene, instruction):
    assert calls(message) == [("refine_scene", {"scene": scene, "instruction": instruction})]


def test_a_refine_with_settings_changes_them_first():
    assert calls("redo the third scene with 8 variations") == [
        ("change_settings", {"num_variations": 8}),
        ("refine_scene", {"scene": 3, "instruction": ""}),
    ]


# Explaining and status ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("why did image 3 win in scene 1?", {"scene": 1, "image": 3}),
        ("Why did image three win in the first scene?", {"scene": 1, "image": 3}),
        ("why is image_2.png the winner of scene 3", {"scene": 3, "image": 2}),
        ("why did the second image win?", {"image": 2}),
        ("explain scene 2", {"scene": 2}),
        ("why did variation 4 lose?", {"image": 4}),
        ("why did it win?", {}),
    ],
)
def test_explaining_a_winner(message, args):
    assert calls(message) == [("explain_winner", args)]


@pytest.mark.parametrize(
    "message", ["how is it going?", "How's it going", "status", "is it done yet?", "any progress?"]
)
def test_status(message):
    assert calls(message) == [("report_status", {})]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("help", "help"),
        ("what can you do?", "help"),
        ("tell me a joke", "unknown"),
        ("", "unknown"),
        ("artisan coffee", "unknown"),
    ],
)
def test_help_and_unknown_requests_call_no_tool(message, kind):
    parsed = parse_message(message)
    assert parsed.kind == kind and parsed.calls == []


def test_the_capabilities_name_every_request_type():
    text = capabilities()
    for example in (
        "storyboard about artisan coffee",
        "use 6 variations",
        "be stricter",
        "scene 2 moodier",
        "image 3 win",
        "how is it going",
    ):
        assert example in text


def test_the_system_prompt_names_every_tool():
    prompt = load_assistant_prompt()
    for name in SCHEMAS:
        assert name in prompt


# Settings changes ---------------------------------------------------------------------------
def test_stricter_raises_both_thresholds_and_turns_strict_mode_on():
    change = apply_settings_change({}, ChangeSettingsArgs(adjust="stricter"))
    assert change.settings.quality_threshold == 30 + ADJUST_STEP
    assert change.settings.consistency_threshold == 30 + ADJUST_STEP
    assert change.settings.strict is True
    assert change.overrides == {
        "quality_threshold": 40.0,
        "consistency_threshold": 40.0,
        "strict": True,
    }
    assert set(change.changed) == {"quality_threshold", "consistency_threshold", "strict"}
    lenient = apply_settings_change(change.overrides, ChangeSettingsArgs(adjust="more_lenient"))
    assert lenient.overrides == {} and lenient.settings == effective_settings({})


def test_stricter_stops_at_100_and_explicit_values_win():
    change = apply_settings_change(
        {"quality_threshold": 95.0}, ChangeSettingsArgs(adjust="stricter", consistency_threshold=50)
    )
    assert change.settings.quality_threshold == 100 and change.settings.consistency_threshold == 50


def test_an_out_of_range_value_is_refused_with_its_range_and_nothing_changes():
    with pytest.raises(SettingsChangeError) as info:
        apply_settings_change({"seed": 3}, ChangeSettingsArgs(num_variations=40))
    message = str(info.value)
    assert (
        "num_variations" in message
        and "between 1 and 16" in message
        and "40" in message
        and "Nothing changed" in message
    )
    with pytest.raises(SettingsChangeError, match="one of square, 16:9, 4:5 or 21:9"):
        apply_settings_change({}, ChangeSettingsArgs(aspect_ratio="9:16"))
    with pytest.raises(SettingsChangeError, match="whole number"):
        apply_settings_change({}, ChangeSettingsArgs(num_variations=2.5))


def test_changes_are_described_from_and_to_and_a_random_seed_clears_the_seed():
    change = apply_settings_change({"seed": 42}, ChangeSettingsArgs(random_seed=True, num_variations=6))
    assert change.overrides == {"num_variations": 6}
    assert describe_change(change) == "variations per scene 4 -> 6; seed 42 -> random."
    same = apply_settings_change({"num_variations": 6}, ChangeSettingsArgs(num_variations=6))
    assert same.changed == {} and describe_change(same) == "Nothing changed."


def test_amending_a_scene_prompt_appends_the_instruction():
    assert (
        amend_prompt("A barista pours latte art.", "moodier, at night")
        == "A barista pours latte art, moodier, at night"
    )
    assert amend_prompt("A barista pours latte art", "  ") == "A barista pours latte art"
