"""The assistant panel's agent: its tools' argument schemas, its system prompt, and the pure
decisions behind the tools (settings changes in words, amending a scene prompt, the help text).

The same argument schemas are what an OpenAI-compatible model is offered through
``bind_tools`` and what the offline intent parser (``agents.intents``) produces, so both
paths drive the very same tools. Argument fields are deliberately loose (plain ints, floats
and strings): ranges are checked by the tools against ``GenerationSettings``, so a value out
of range gets a helpful reply naming the range instead of a schema error.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from imageforge.graph.context import GenerationSettings

__all__ = [
    "ADJUST_STEP",
    "SETTING_LABELS",
    "TOOL_NAMES",
    "ChangeSettingsArgs",
    "ExplainWinnerArgs",
    "RefineSceneArgs",
    "ReportStatusArgs",
    "SettingsChange",
    "SettingsChangeError",
    "StartStoryboardArgs",
    "ToolName",
    "ToolOutcome",
    "amend_prompt",
    "apply_settings_change",
    "capabilities",
    "describe_change",
    "describe_settings",
    "effective_settings",
    "load_assistant_prompt",
]

ToolName = Literal["start_storyboard", "change_settings", "refine_scene", "explain_winner", "report_status"]
TOOL_NAMES: tuple[str, ...] = (
    "start_storyboard",
    "change_settings",
    "refine_scene",
    "explain_winner",
    "report_status",
)

#: How far "be stricter" raises (and "be more lenient" lowers) the quality and consistency
#: thresholds, in points of the 0-100 scale. "Be stricter" also turns strict mode on (a scene
#: whose attempts all miss fails instead of keeping its best attempt); "be more lenient"
#: turns it off.
ADJUST_STEP = 10.0

SETTING_LABELS: dict[str, str] = {
    "num_variations": "variations per scene",
    "max_enhancement_iterations": "enhancement iterations",
    "approval_threshold": "approval threshold",
    "quality_threshold": "quality threshold",
    "consistency_threshold": "consistency threshold",
    "max_retries": "retries",
    "strict": "strict mode",
    "seed": "seed",
    "aspect_ratio": "aspect ratio",
    "resolution": "resolution",
}


# Tool arguments ------------------------------------------------------------------------------
class StartStoryboardArgs(BaseModel):
    """Start a new storyboard from a description, with the conversation's settings."""

    description: str = Field(min_length=1, max_length=2000, description="What the storyboard is about (its concept).")
    target_duration_s: float | None = Field(None, description="Video length in seconds, when the user gave one.")
    num_scenes: int | None = Field(None, description="Number of scenes, when the user gave one.")


class ChangeSettingsArgs(BaseModel):
    """Change the conversation's generation settings. Give only what the user asked to change;
    call it with no arguments to show the current settings."""

    num_variations: int | float | None = Field(None, description="Images generated and scored per attempt (1-16).")
    max_enhancement_iterations: int | float | None = Field(
        None, description="Cap on critique-loop rounds per scene (1-10)."
    )
    approval_threshold: float | None = Field(None, description="Prompt score that ends the critique loop (0-100).")
    quality_threshold: float | None = Field(None, description="Minimum weighted image score (0-100).")
    consistency_threshold: float | None = Field(
        None, description="Minimum similarity to the reference (0-100; 0 disables)."
    )
    max_retries: int | float | None = Field(None, description="Extra attempts after a failed validation (0-5).")
    strict: bool | None = Field(None, description="True: a scene whose attempts all miss fails; False: keep the best.")
    seed: int | None = Field(None, description="Base seed for reproducible images (0-2147483647).")
    random_seed: bool = Field(False, description="True to go back to a random seed.")
    aspect_ratio: str | None = Field(None, description="'square', '16:9', '4:5' or '21:9'.")
    resolution: int | float | None = Field(None, description="Long edge in pixels (64-2048).")
    adjust: Literal["stricter", "more_lenient"] | None = Field(
        None,
        description=(
            "'stricter' raises the quality and consistency thresholds by 10 and turns strict mode on; "
            "'more_lenient' lowers them by 10 and turns it off. Explicit values given alongside win."
        ),
    )


class RefineSceneArgs(BaseModel):
    """Refine one scene of the current storyboard: a new storyboard that keeps the scenes before
    it and re-enhances and regenerates this scene and the ones after it."""

    scene: int = Field(description="1-based scene number.")
    instruction: str = Field("", max_length=1000, description="How to change the scene, e.g. 'moodier, at night'.")


class ExplainWinnerArgs(BaseModel):
    """Explain from the trace why a variation won its scene (or why another one did not)."""

    scene: int | None = Field(None, description="1-based scene number; omit for every finished scene.")
    image: int | None = Field(None, description="1-based variation number (image_<n>.png) the user asked about.")


class ReportStatusArgs(BaseModel):
    """Report how a storyboard is going: status, progress, finished scenes."""

    generation_id: str | None = Field(
        None,
        max_length=64,
        description="A storyboard id the user named; omit for the conversation's current storyboard.",
    )


# Prompt and help ----------------------------------------------------------------------------
@cache
def load_assistant_prompt() -> str:
    """The system prompt of the LLM-backed assistant (``agents/prompts/assistant.txt``)."""
    return files("agents").joinpath("prompts", "assistant.txt").read_text(encoding="utf-8").strip()


def capabilities() -> str:
    """What the assistant can do, with one example each: the answer to an unknown request."""
    return (
        "I can help with storyboards. Try:\n"
        '- "make a 15 second storyboard about artisan coffee" to start a storyboard;\n'
        '- "use 6 variations", "be stricter", "no more than 2 iterations", "4:5 portrait" or "seed 42" '
        'to change the settings ("settings" shows them);\n'
        '- "make scene 2 moodier, at night" to refine one scene (the scenes before it are kept);\n'
        '- "why did image 3 win in scene 1?" to explain a winner from the trace;\n'
        '- "how is it going?" for the status of the current storyboard.'
    )


# Settings -----------------------------------------------------------------------------------
class SettingsChangeError(ValueError):
    """A requested setting is out of range or unknown; the message is the reply to the user."""


class SettingsChange(BaseModel):
    """The outcome of a settings change: the conversation's new overrides and what changed."""

    overrides: dict[str, Any]
    changed: dict[str, tuple[Any, Any]] = Field(default_factory=dict, description="field -> (before, after)")
    settings: GenerationSettings


def effective_settings(overrides: dict[str, Any], base: dict[str, Any] | None = None) -> GenerationSettings:
    """``base`` (the defaults when omitted) with the conversation's ``overrides`` applied."""
    return GenerationSettings(**{**(base or {}), **overrides})


def _range(name: str) -> str:
    """'between 1 and 16' from the field's constraints in ``GenerationSettings``."""
    info = GenerationSettings.model_fields[name]
    low = high = None
    for item in info.metadata:
        low = getattr(item, "ge", None) if getattr(item, "ge", None) is not None else low
        high = getattr(item, "le", None) if getattr(item, "le", None) is not None else high
    if name == "aspect_ratio":
        return "one of square, 16:9, 4:5 or 21:9"
    whole = "a whole number " if info.annotation is int else ""
    if low is not None and high is not None:
        return f"{whole}between {_number(low)} and {_number(high)}"
    return "a valid value"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _format(name: str, value: Any) -> str:
    if name == "strict":
        return "on" if value else "off"
    if name == "seed":
        return "random" if value is None else str(value)
    if name == "resolution":
        return f"{value} px"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def apply_settings_change(overrides: dict[str, Any], change: ChangeSettingsArgs) -> SettingsChange:
    """The conversation's overrides after ``change``; raises ``SettingsChangeError`` (and
    changes nothing) when a value is out of ``GenerationSettings``' ranges."""
    current = effective_settings(overrides)
    updates: dict[str, Any] = {}
    if change.adjust == "stricter":
        updates.update(
            quality_threshold=min(100.0, current.quality_threshold + ADJUST_STEP),
            consistency_threshold=min(100.0, current.consistency_threshold + ADJUST_STEP),
            strict=True,
        )
    elif change.adjust == "more_lenient":
        updates.update(
            quality_threshold=max(0.0, current.quality_threshold - ADJUST_STEP),
            consistency_threshold=max(0.0, current.consistency_threshold - ADJUST_STEP),
            strict=False,
        )
    explicit = change.model_dump(exclude={"adjust", "random_seed"}, exclude_none=True)
    updates.update(explicit)
    if change.random_seed:
        updates["seed"] = None
    candidate = {**overrides, **updates}
    try:
        settings = GenerationSettings(**candidate)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "settings"
            label = SETTING_LABELS.get(name, name)
            problems.append(f"{label} (`{name}`) must be {_range(name)}, got {candidate.get(name)!r}")
        raise SettingsChangeError(
            "I can't use that: "
            + "; ".join(problems)
            + ". Nothing changed; current settings: "
            + describe_settings(current)
            + "."
        ) from exc
    changed = {
        name: (getattr(current, name), getattr(settings, name))
        for name in updates
        if getattr(current, name) != getattr(settings, name)
    }
    defaults = GenerationSettings()
    new_overrides = {name: value for name, value in settings.model_dump().items() if value != getattr(defaults, name)}
    return SettingsChange(overrides=new_overrides, changed=changed, settings=settings)


def describe_change(change: SettingsChange) -> str:
    """'variations per scene 4 -> 6; strict mode off -> on' (or that nothing changed)."""
    if not change.changed:
        return "Nothing changed."
    return (
        "; ".join(
            f"{SETTING_LABELS.get(name, name)} {_format(name, before)} -> {_format(name, after)}"
            for name, (before, after) in change.changed.items()
        )
        + "."
    )


def describe_settings(settings: GenerationSettings) -> str:
    """The settings in one line, in words."""
    consistency = (
        "consistency check off"
        if settings.consistency_threshold == 0
        else f"consistency >= {settings.consistency_threshold:g}"
    )
    variations = _count(settings.num_variations, "variation")
    iterations = _count(settings.max_enhancement_iterations, "enhancement iteration")
    retries = _count(settings.max_retries, "retry", "retries")
    return (
        f"{variations} per scene, up to {iterations} (approval at {settings.approval_threshold:g}), "
        f"quality >= {settings.quality_threshold:g}, {consistency}, {retries}, "
        f"strict mode {_format('strict', settings.strict)}, seed {_format('seed', settings.seed)}, "
        f"{settings.aspect_ratio} at {settings.resolution} px"
    )


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


# Refining -----------------------------------------------------------------------------------
def amend_prompt(prompt: str, instruction: str) -> str:
    """A scene prompt with the user's instruction appended (the cinematographer then re-enhances it)."""
    instruction = instruction.strip().strip(" .,;:")
    base = prompt.strip().rstrip(" .,;:")
    if not instruction:
        return base
    return f"{base}, {instruction}"


# Tool outcomes ------------------------------------------------------------------------------
class ToolOutcome(BaseModel):
    """What a tool implementation returns: the text the user (or the model) reads, the action
    the API reports, and the storyboard that becomes the conversation's current one."""

    reply: str
    action: dict[str, Any] | None = Field(
        None, description="{type, ...details, generation_id?}; None when nothing was done."
    )
    generation_id: str | None = Field(
        None, description="The conversation's current storyboard from now on, if it changes."
    )
    refused: bool = Field(False, description="True when the request could not be carried out (the reply says why).")
