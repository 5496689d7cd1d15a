"""Loads a trace folder back into the models that wrote it (for the API and for inspection)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError

from imageforge.agents.schemas import EnhancementResult
from imageforge.traces import layout
from imageforge.traces.schemas import RunSummary, SceneResult


class TraceNotFoundError(LookupError):
    """No trace folder (or no summary.json yet) for this generation."""


class CorruptTraceError(ValueError):
    """A trace file exists but does not parse; the message names the file."""


class TraceDocument(BaseModel):
    """A run's summary with every scene's enhancement and result, plus the files on disk."""

    summary: RunSummary
    files: list[str] = Field(default_factory=list, description="Paths relative to the generation folder.")


ModelT = TypeVar("ModelT", bound=BaseModel)


def _load(path: Path, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        raise CorruptTraceError(f"{path}: {exc}") from exc


def read_summary(root: str | Path, generation_id: str) -> RunSummary:
    path = layout.generation_dir(root, generation_id) / layout.SUMMARY
    if not path.is_file():
        raise TraceNotFoundError(f"no trace for generation {generation_id!r} under {root}")
    return _load(path, RunSummary)


def read_trace(root: str | Path, generation_id: str) -> TraceDocument:
    """summary.json, completed with scene files newer than it.

    summary.json is rewritten after each scene, but a run killed between a scene's files and
    the summary leaves scene files the summary does not list yet; they are merged in here.
    """
    folder = layout.generation_dir(root, generation_id)
    summary = read_summary(root, generation_id)
    scenes = {s.scene_number: s for s in summary.scenes}
    enhancements = {e.scene_number: e for e in summary.enhancements}
    for scene_folder in sorted(folder.glob("scene_*")):
        if (path := scene_folder / layout.SCENE_RESULT).is_file():
            result = _load(path, SceneResult)
            scenes.setdefault(result.scene_number, result)
        if (path := scene_folder / layout.PROMPT_SUMMARY).is_file():
            enhancement = _load(path, EnhancementResult)
            enhancements.setdefault(enhancement.scene_number, enhancement)
    summary = summary.model_copy(
        update={
            "scenes": [scenes[k] for k in sorted(scenes)],
            "enhancements": [enhancements[k] for k in sorted(enhancements)],
        }
    )
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return TraceDocument(summary=summary, files=files)


def resolve_trace_file(root: str | Path, generation_id: str, relative: str) -> Path:
    """The absolute path of one trace file, refusing anything outside the generation folder."""
    folder = layout.generation_dir(root, generation_id).resolve()
    candidate = (folder / relative).resolve()
    if not candidate.is_relative_to(folder) or candidate == folder:
        raise ValueError(f"`path` must stay inside the trace folder, got {relative!r}")
    if not candidate.is_file():
        raise TraceNotFoundError(f"no trace file {relative!r} for generation {generation_id!r}")
    return candidate
