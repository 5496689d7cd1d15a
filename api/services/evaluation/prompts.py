"""Prompt sets for `imageforge eval`: the built-in PartiPrompts sample, or the user's file.

A user file is plain text (one prompt a line), JSON Lines or CSV, each with a ``prompt`` and
an optional ``category``. Anything malformed raises ``PromptSetError`` naming the file and
line, so the CLI prints one line and stops before any image is generated.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

__all__ = ["BUILTIN_NAME", "EvalPrompt", "PromptSetError", "builtin_prompts", "load_prompts"]

BUILTIN_NAME = "parti-50"
UNCATEGORISED = "uncategorised"
MAX_PROMPT_CHARS = 4000


class PromptSetError(ValueError):
    """A prompt file that cannot be read as a prompt set."""


class EvalPrompt(BaseModel):
    """One prompt of the set; ``id`` names its trace folders and results lines."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    category: str = UNCATEGORISED


def builtin_prompts() -> list[EvalPrompt]:
    """50 PartiPrompts across 12 categories (data/ATTRIBUTION.md)."""
    text = resources.files("imageforge.api.services.evaluation").joinpath("data/prompts.jsonl").read_text("utf-8")
    return _from_jsonl(text, "built-in prompts")


def load_prompts(path: Path) -> list[EvalPrompt]:
    """The prompts of a .txt, .jsonl or .csv file, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptSetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptSetError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        prompts = _from_jsonl(text, str(path))
    elif suffix == ".csv":
        prompts = _from_csv(text, str(path))
    elif suffix in {".txt", ""}:
        prompts = _from_lines(text, str(path))
    else:
        raise PromptSetError(f"{path}: unknown prompt file type {suffix!r}; use .txt, .jsonl or .csv")
    if not prompts:
        raise PromptSetError(f"{path}: holds no prompts")
    return prompts


def _make(number: int, prompt: object, category: object, where: str, given_id: object = None) -> EvalPrompt:
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptSetError(f"{where}: needs a non-empty `prompt` string")
    if category is not None and not isinstance(category, str):
        raise PromptSetError(f"{where}: `category` must be a string, got {category!r}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptSetError(f"{where}: the prompt is longer than {MAX_PROMPT_CHARS} characters")
    identifier = given_id if isinstance(given_id, str) and given_id else f"p{number:03d}"
    try:
        return EvalPrompt(id=identifier, prompt=prompt.strip(), category=(category or "").strip() or UNCATEGORISED)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PromptSetError(f"{where}: `{'.'.join(map(str, first['loc']))}` {first['msg']}") from None


def _from_lines(text: str, source: str) -> list[EvalPrompt]:
    lines = [line.strip() for line in text.splitlines()]
    return [_make(i, line, None, f"{source}, prompt {i}") for i, line in enumerate((x for x in lines if x), start=1)]


def _from_jsonl(text: str, source: str) -> list[EvalPrompt]:
    prompts: list[EvalPrompt] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}, line {line_number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise PromptSetError(f"{where}: expected an object with a `prompt`, got {type(item).__name__}")
        prompts.append(_make(len(prompts) + 1, item.get("prompt"), item.get("category"), where, item.get("id")))
    return _unique(prompts, source)


def _from_csv(text: str, source: str) -> list[EvalPrompt]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "prompt" not in fields:
        raise PromptSetError(f"{source}: the CSV header needs a `prompt` column, got {reader.fieldnames!r}")
    prompts: list[EvalPrompt] = []
    try:
        for row in reader:
            cleaned = {(key or "").strip().lower(): value for key, value in row.items()}
            if not any((value or "").strip() for value in cleaned.values() if isinstance(value, str)):
                continue
            where = f"{source}, line {reader.line_num}"
            prompts.append(_make(len(prompts) + 1, cleaned.get("prompt"), cleaned.get("category"), where))
    except csv.Error as exc:
        raise PromptSetError(f"{source}, line {reader.line_num}: {exc}") from None
    return prompts


def _unique(prompts: list[EvalPrompt], source: str) -> list[EvalPrompt]:
    seen: set[str] = set()
    for item in prompts:
        if item.id in seen:
            raise PromptSetError(f"{source}: prompt id {item.id!r} appears twice")
        seen.add(item.id)
    return prompts
