"""The LLM agents' system prompts, kept as text files in ``agents/prompts/`` so they can be
read, diffed and tuned without touching code. Each is read once per process."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["SYSTEM_PROMPT_NAMES", "load_system_prompt"]

SYSTEM_PROMPT_NAMES: tuple[str, ...] = ("planner", "cinematographer", "prompt_engineer")


@cache
def load_system_prompt(name: str) -> str:
    """The text of ``agents/prompts/<name>.txt``."""
    if name not in SYSTEM_PROMPT_NAMES:
        raise ValueError(f"`name` must be one of {SYSTEM_PROMPT_NAMES}, got {name!r}.")
    return files("imageforge.agents").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8").strip()
