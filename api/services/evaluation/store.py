"""eval/<id>/: the run's configuration and its results log, which is what makes a run resumable.

results.jsonl gets one line per prompt and arm the moment that arm finishes (flushed and
fsynced), so a killed run loses at most the arm in progress. A line cut short by the kill is
dropped when the log is read back, and the run continues with the arms that have no line.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from imageforge.agents.schemas import EnhancementResult
from imageforge.api.services.evaluation.prompts import EvalPrompt
from imageforge.graph.context import BackendSettings, GenerationSettings

__all__ = [
    "ARMS",
    "Arm",
    "EvalConfig",
    "EvalRecord",
    "ResultsLog",
    "config_path",
    "latest",
    "load_config",
    "save_config",
]

Arm = Literal["raw", "raw-best-of-n", "enhanced", "full"]
#: Report order: each arm adds one thing to the one before.
ARMS: tuple[Arm, ...] = ("raw", "raw-best-of-n", "enhanced", "full")
CONFIG = "config.json"
RESULTS = "results.jsonl"


class EvalConfig(BaseModel):
    """Everything that decides the figures; a resumed run reuses it unchanged."""

    eval_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    prompt_source: str = Field(description="'parti-50' or the prompt file's path.")
    prompts: list[EvalPrompt] = Field(min_length=1)
    seed: int = Field(ge=0, le=2**31 - 1, description="Every prompt's base seed derives from it.")
    settings: GenerationSettings
    backends: BackendSettings
    selection: list[str] = Field(description="Scorers that rank variations inside the pipeline.")
    judges: list[str] = Field(min_length=1, description="Scorers that judge each arm's final image.")
    held_out: list[str] = Field(default_factory=list)
    resolved: dict[str, str] = Field(
        default_factory=dict, description="What served each role: 'generator', 'generator_model', 'llm'."
    )
    resamples: int = Field(2000, ge=100, le=100_000, description="Bootstrap resamples per interval.")

    def same_run(self, other: EvalConfig) -> bool:
        """Whether ``other`` asks for the same figures (identity and timestamps aside)."""
        skip = {"eval_id", "created_at"}
        return self.model_dump(mode="json", exclude=skip) == other.model_dump(mode="json", exclude=skip)


class EvalRecord(BaseModel):
    """One arm of one prompt: its final image, the judges' scores and what it cost."""

    prompt_id: str
    category: str
    arm: Arm
    status: Literal["ok", "failed"]
    error: str | None = None
    generation_id: str
    base_seed: int
    used_prompt: str = Field("", description="The prompt the arm generated from (as written or enhanced).")
    image: str | None = Field(None, description="The arm's final image, relative to the eval folder.")
    selection_score: float | None = Field(None, description="The pipeline's weighted score of that image.")
    judges: dict[str, float] = Field(default_factory=dict, description="judge -> 0-100 against the prompt as written")
    images_generated: int = 0
    attempts: int = 0
    wall_s: float = 0.0
    llm_requests: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_shared_with: str | None = Field(None, description="The arm whose LLM calls this arm reuses (not re-spent).")
    enhancement: EnhancementResult | None = Field(
        None, description="Full arm only: the critique loop's result, which the enhanced arm generates from."
    )


def config_path(folder: Path) -> Path:
    return folder / CONFIG


def save_config(folder: Path, config: EvalConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{CONFIG}.tmp"
    temporary.write_text(config.model_dump_json(indent=2), encoding="utf-8")
    temporary.replace(config_path(folder))


def load_config(folder: Path) -> EvalConfig:
    path = config_path(folder)
    try:
        return EvalConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{folder}: no evaluation there ({CONFIG} is missing)") from None
    except ValidationError as exc:
        raise ValueError(f"{path}: not a valid evaluation config ({exc.errors()[0]['msg']})") from None


class ResultsLog:
    """Append-only results.jsonl with a repair step for a line a kill cut short."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESULTS

    def read(self) -> list[EvalRecord]:
        """Every complete record, in order; a broken line is dropped and the file rewritten without it."""
        if not self.path.is_file():
            return []
        records: list[EvalRecord] = []
        broken = 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                records.append(EvalRecord.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError):
                broken += 1
        if broken:
            temporary = self.path.with_suffix(".jsonl.tmp")
            temporary.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
            temporary.replace(self.path)
        return records

    def append(self, record: EvalRecord) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(record.model_dump_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def latest(records: list[EvalRecord]) -> dict[tuple[str, str], EvalRecord]:
    """The last record per (prompt, arm): a retried arm replaces its failed line."""
    return {(r.prompt_id, r.arm): r for r in records}
