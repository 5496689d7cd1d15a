"""Writes the trace of a run as it happens, one atomic file at a time.

Every file is written to a temporary name and renamed into place (tools.storage), so a
crash or a SIGKILL leaves either the previous version or the new one, never half a file.
Files are written by the node that produced their content, so a run that dies midway still
leaves a readable trace of everything it finished. Folders are created 0700 and files 0600:
only the service's own user reads a trace.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pydantic import BaseModel

from imageforge.agents.schemas import AgentEvent, Critique, EnhancedPrompt, EnhancementResult
from imageforge.tools.storage import atomic_copy, atomic_write_bytes, private_dirs
from imageforge.traces import layout
from imageforge.traces.schemas import RunSummary, SceneResult


def write_text(path: Path, text: str) -> Path:
    private_dirs(path.parent)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def write_json(path: Path, value: BaseModel | dict | list) -> Path:
    text = value.model_dump_json(indent=2) if isinstance(value, BaseModel) else json.dumps(value, indent=2, default=str)
    return write_text(path, text + "\n")


def _events_block(events: list[AgentEvent]) -> str:
    if not events:
        return ""
    lines = "\n".join(f"- [{e.kind}] {e.detail}" for e in events)
    return f"\nLLM calls, retries and fallbacks:\n{lines}\n"


def render_enhanced(enhanced: EnhancedPrompt, iteration: int, events: list[AgentEvent]) -> str:
    fields = [
        ("Shot type", enhanced.shot_type),
        ("Camera angle", enhanced.camera_angle),
        ("Lens / aperture", f"{enhanced.lens} {enhanced.aperture}"),
        ("Lighting", enhanced.lighting),
        ("Colour temperature", f"{enhanced.color_temperature_k}K"),
        ("Composition", enhanced.composition),
        ("Setting", enhanced.setting_detail),
        ("Time of day", enhanced.time_of_day),
        ("Palette", ", ".join(enhanced.palette)),
        ("Negative prompt", enhanced.negative_prompt),
    ]
    body = "\n".join(f"{name}: {value}" for name, value in fields if value)
    addressed = f"Addressed: {enhanced.addressed}\n" if enhanced.addressed else ""
    return (
        f"Agent 1 (cinematographer), iteration {iteration}, source: {enhanced.source}\n"
        f"{addressed}\n{enhanced.prompt}\n\n{body}\n{_events_block(events)}"
    )


def _subject_line(critique: Critique) -> str:
    """The faithfulness check: a version that lost the scene's subject fails whatever its scores."""
    check = critique.subject_check
    if check is not None:
        verdict = "kept" if check.kept else "LOST, so this version fails whatever its scores"
        return f"Subject check: {verdict} ({check.detail})"
    if critique.subject_kept:
        return "Subject check: kept (the prompt engineer's faithfulness item)"
    return "Subject check: LOST (the prompt engineer's faithfulness item), so this version fails whatever its scores"


def render_critique(critique: Critique, iteration: int, threshold: float, events: list[AgentEvent]) -> str:
    verdict = "APPROVED" if critique.overall >= threshold else "below threshold, another pass requested"
    scores = "\n".join(
        f"  {name:<16} {value:5.1f}  (weight {critique.weights[name]:.2f})"
        for name, value in critique.scores.model_dump().items()
    )
    suggestions = "\n".join(f"- {s}" for s in critique.suggestions) or "- (none)"
    return (
        f"Agent 2 (prompt engineer), iteration {iteration}, source: {critique.source}\n"
        f"Overall: {critique.overall:.1f} (approval threshold {threshold:g}): {verdict}\n"
        f"{_subject_line(critique)}\n\n"
        f"Scores:\n{scores}\n\nCritique:\n{critique.critique}\n\nSuggestions:\n{suggestions}\n"
        f"{_events_block(events)}"
    )


class TraceWriter:
    """The trace folder of one generation. Cheap to create; holds no open files."""

    def __init__(self, root: str | Path, generation_id: str) -> None:
        self.generation_id = generation_id
        self.root = layout.generation_dir(root, generation_id)

    def scene_dir(self, scene_number: int) -> Path:
        return self.root / f"scene_{scene_number}"

    def ensure_writable(self) -> None:
        """Fail early, before any work, when the trace folder cannot be written.

        The folder is owner-only (0700; the files in it are 0600, ``atomic_write_bytes``): a
        trace holds a user's prompts and images.
        """
        private_dirs(self.root)
        probe = self.root / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()

    # Enhancement ---------------------------------------------------------------------
    def original_prompt(self, scene_number: int, prompt: str) -> Path:
        return write_text(self.scene_dir(scene_number) / layout.ORIGINAL_PROMPT, prompt + "\n")

    def cinematographer(
        self, scene_number: int, iteration: int, enhanced: EnhancedPrompt, events: list[AgentEvent]
    ) -> Path:
        path = self.scene_dir(scene_number) / layout.agent_file(iteration, 1)
        return write_text(path, render_enhanced(enhanced, iteration, events))

    def prompt_engineer(
        self, scene_number: int, iteration: int, critique: Critique, threshold: float, events: list[AgentEvent]
    ) -> Path:
        path = self.scene_dir(scene_number) / layout.agent_file(iteration, 2)
        return write_text(path, render_critique(critique, iteration, threshold, events))

    def enhancement(self, result: EnhancementResult) -> None:
        folder = self.scene_dir(result.scene_number)
        write_text(folder / layout.FINAL_PROMPT, result.final.prompt + "\n")
        write_json(folder / layout.PROMPT_SUMMARY, result)

    # Generation ----------------------------------------------------------------------
    def attempt_image_path(self, scene_number: int, attempt: int, index: int) -> Path:
        return self.scene_dir(scene_number) / layout.attempt_image(attempt, index)

    def scene_result(self, result: SceneResult, quality_scores: dict, selected_best: str) -> SceneResult:
        """Publish the winning attempt's images as image_<i>.png and write the scene's reports.

        Returns the result with ``winner_path`` pointing at the published copy.
        """
        folder = self.scene_dir(result.scene_number)
        winner_path = None
        if result.winner_attempt is not None:
            attempt = next(a for a in result.attempts if a.attempt == result.winner_attempt)
            for variation in attempt.variations:
                target = folder / layout.image_file(variation.index)
                atomic_copy(variation.path, target)
                if variation.index == attempt.best_index:
                    winner_path = str(target)
        result = result.model_copy(update={"winner_path": winner_path})
        write_json(folder / layout.QUALITY_SCORES, quality_scores)
        write_text(folder / layout.SELECTED_BEST, selected_best)
        write_json(folder / layout.SCENE_RESULT, result)
        return result

    # Run -----------------------------------------------------------------------------
    def summary(self, summary: RunSummary) -> Path:
        return write_json(self.root / layout.SUMMARY, summary)

    def delete(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
