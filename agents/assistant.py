"""The assistant panel's agent: its tools' argument schemas, its system prompt, and the pure
decisions behind the tools (settings changes in words, amending a scene prompt, the help text).

The same argument schemas are what an OpenAI-compatible model is offered through
``bind_tools`` and what the offline intent parser (``agents.intents``) produces, so both
paths drive the very same tools. Argument fields are deliberately loose (plain ints, floats
and strings): ranges are checked by the tools against the run settings (``graph.settings_change``), so a value out
of range gets a helpful reply naming the range instead of a schema error.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "TOOL_NAMES",
    "ChangeSettingsArgs",
    "ExplainWinnerArgs",
    "RefineSceneArgs",
    "ReportStatusArgs",
    "StartStoryboardArgs",
    "ToolName",
    "ToolOutcome",
    "amend_prompt",
    "capabilities",
    "load_assistant_prompt",
    "scene_refined",
    "status_reported",
    "storyboard_started",
]

ToolName = Literal["start_storyboard", "change_settings", "refine_scene", "explain_winner", "report_status"]
TOOL_NAMES: tuple[str, ...] = (
    "start_storyboard",
    "change_settings",
    "refine_scene",
    "explain_winner",
    "report_status",
)


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
    return files("imageforge.agents").joinpath("prompts", "assistant.txt").read_text(encoding="utf-8").strip()


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


# Refining -----------------------------------------------------------------------------------
def amend_prompt(prompt: str, instruction: str) -> str:
    """A scene prompt with the user's instruction appended (the cinematographer then re-enhances it)."""
    instruction = instruction.strip().strip(" .,;:")
    base = prompt.strip().rstrip(" .,;:")
    if not instruction:
        return base
    return f"{base}, {instruction}"


# Tool outcomes ------------------------------------------------------------------------------
def storyboard_started(
    generation_id: str,
    *,
    concept: str,
    target_duration_s: float | None,
    num_scenes: int | None,
    settings: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The ``storyboard_started`` action, as the service and the standalone runner report it
    (``extra``: what only one of them knows, such as the status URL)."""
    return {
        "type": "storyboard_started",
        "generation_id": generation_id,
        "concept": concept,
        "target_duration_s": target_duration_s,
        "num_scenes": num_scenes,
        "settings": settings,
        **extra,
    }


def scene_refined(
    generation_id: str, *, reuse_from: str, scene: int, instruction: str, prompt: str, **extra: Any
) -> dict[str, Any]:
    """The ``scene_refined`` action: storyboard ``generation_id`` keeps the scenes before
    ``scene`` from ``reuse_from`` and redoes the rest from ``prompt``."""
    return {
        "type": "scene_refined",
        "generation_id": generation_id,
        "reuse_from": reuse_from,
        "scene": scene,
        "keep_scenes": scene - 1,
        "instruction": instruction,
        "prompt": prompt,
        **extra,
    }


def status_reported(
    generation_id: str, *, status: str, scenes_finished: int, scenes_total: int, **extra: Any
) -> dict[str, Any]:
    """The ``status_reported`` action."""
    return {
        "type": "status_reported",
        "generation_id": generation_id,
        "status": status,
        "scenes_finished": scenes_finished,
        "scenes_total": scenes_total,
        **extra,
    }


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
