"""The LLM agents' system prompts: present, loaded once, and in step with the code."""

from __future__ import annotations

import re

import pytest

from imageforge.agents.rubric import DIMENSIONS
from imageforge.agents.schemas import DIMENSION_WEIGHTS
from imageforge.agents.system_prompts import SYSTEM_PROMPT_NAMES, load_system_prompt


@pytest.mark.parametrize("name", SYSTEM_PROMPT_NAMES)
def test_each_prompt_loads_once_and_names_its_tool(name):
    text = load_system_prompt(name)
    assert load_system_prompt(name) is text
    tool = {
        "planner": "PlanDraft",
        "cinematographer": "EnhancedPrompt",
        "prompt_engineer": "CritiqueDraft",
    }[name]
    assert tool in text


def test_prompt_engineer_prompt_states_the_rubric_and_the_same_weights():
    text = load_system_prompt("prompt_engineer")
    stated = dict(re.findall(r"^- (\w+)\s+(0\.\d+)$", text, flags=re.MULTILINE))
    assert {k: float(v) for k, v in stated.items()} == DIMENSION_WEIGHTS
    for dimension in DIMENSIONS:
        assert f"\n{dimension} - " in text


def test_cinematographer_prompt_asks_for_every_structured_field():
    text = load_system_prompt("cinematographer")
    for field in (
        "shot_type",
        "camera_angle",
        "lens",
        "aperture",
        "lighting",
        "color_temperature_k",
        "composition",
        "setting_detail",
        "time_of_day",
        "palette",
        "negative_prompt",
        "addressed",
    ):
        assert field in text


def test_unknown_prompt_name_is_refused():
    with pytest.raises(ValueError, match="`name`"):
        load_system_prompt("director")
