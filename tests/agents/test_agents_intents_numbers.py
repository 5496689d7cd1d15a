"""The offline assistant asks back about a count it cannot use instead of guessing (issue 10,
finding 10: "no more than -3 iterations" was read as 3)."""

from __future__ import annotations

import pytest

from imageforge.agents.intents import parse_message


@pytest.mark.parametrize(
    ("message", "asks"),
    [
        ("no more than -3 iterations", "How many enhancement iterations"),
        ("max iterations to -4", "How many enhancement iterations"),
        ("use minus two retries", "How many attempts per scene"),
        ("0 attempts", "How many attempts per scene"),
        ("\u22123 variations", "How many variations per scene"),
        ("quality threshold to -5", "What quality threshold (0 to 100)"),
        ("make a 15 second storyboard about coffee with -2 variations", "How many variations per scene"),
        ("make scene 2 moodier with -1 variations", "How many variations per scene"),
    ],
)
def test_a_negative_count_is_asked_back(message: str, asks: str) -> None:
    parsed = parse_message(message)
    assert parsed.kind == "clarify" and not parsed.calls
    assert parsed.question is not None and asks in parsed.question and "changed nothing" in parsed.question


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("no more than 3 iterations", {"max_enhancement_iterations": 3}),
        ("use twenty-five variations", {"num_variations": 25}),  # a hyphen inside a number word is no sign
        ("iterations = 5", {"max_enhancement_iterations": 5}),
        ("3 attempts", {"max_retries": 2}),
    ],
)
def test_plain_numbers_still_change_settings(message: str, expected: dict[str, int]) -> None:
    parsed = parse_message(message)
    assert parsed.kind == "tools"
    assert parsed.calls[0].name == "change_settings" and parsed.calls[0].args == expected


def test_a_range_is_not_read_as_a_negative_number() -> None:
    parsed = parse_message("make a 2-3 scene storyboard about coffee")
    assert parsed.kind == "tools"
