"""The assistant's settings changes: apply one in words, say what changed, describe the rest.

Pure functions over ``GenerationSettings``: its field constraints are the ranges a reply
names when a value is refused, so the assistant and the request schemas can never disagree.
The assistant's tools (``graph.assistant``) call these; the tool argument schemas live with
the agent (``agents.assistant``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from imageforge.agents.assistant import ChangeSettingsArgs
from imageforge.graph.context import GenerationSettings

__all__ = [
    "ADJUST_STEP",
    "SETTING_LABELS",
    "SettingsChange",
    "SettingsChangeError",
    "apply_settings_change",
    "describe_change",
    "describe_settings",
    "effective_settings",
]

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
        return "the model's native size" if value is None else f"{value} px"
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
            + ". Which value do you want instead?"
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
        f"{settings.aspect_ratio} at {_format('resolution', settings.resolution)}"
    )


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
