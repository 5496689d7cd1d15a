"""File names of the seed-004 trace layout, in one place for the writer and the reader.

```
<trace_root>/<generation_id>/
  summary.json                      run-level summary (RunSummary), rewritten after every scene
  scene_<k>/
    00_original_prompt.txt
    01_agent1_iteration_1.txt       cinematographer, iteration 1
    02_agent2_iteration_1.txt       prompt engineer, iteration 1
    ...
    final_enhanced_prompt.txt
    prompt_trace_summary.json       EnhancementResult: every iteration, five scores, critique
    image_1.png ... image_N.png     the winning attempt's variations
    quality_scores.json             every variation of every attempt, ranked
    selected_best.txt               why the winner won, in words
    scene_result.json               SceneResult: what the reader and the API load
    attempts/attempt_<a>/image_<i>.png   every attempt's images (beyond the seed layout)
<trace_root>/.deleting-<generation_id>.<hex>/   a trace being deleted (retention); never a trace
```

Names that start with a dot are never generations: retention renames a folder to
``.deleting-...`` before removing it, so a half-deleted trace is never read as one.
"""

from __future__ import annotations

from pathlib import Path

SUMMARY = "summary.json"
ORIGINAL_PROMPT = "00_original_prompt.txt"
FINAL_PROMPT = "final_enhanced_prompt.txt"
PROMPT_SUMMARY = "prompt_trace_summary.json"
QUALITY_SCORES = "quality_scores.json"
SELECTED_BEST = "selected_best.txt"
SCENE_RESULT = "scene_result.json"
DELETING_PREFIX = ".deleting-"
"""A trace or upload being deleted is renamed to ``.deleting-<name>.<hex>`` first (traces.retention)."""


def is_generation_name(name: str) -> bool:
    """True for a name that may be a generation folder: plain, and not hidden (no leading dot)."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def generation_dir(root: str | Path, generation_id: str) -> Path:
    if not is_generation_name(generation_id):
        raise ValueError(f"`generation_id` must be a plain name without a leading dot, got {generation_id!r}")
    return Path(root) / generation_id


def list_generations(root: str | Path) -> list[str]:
    """The generation ids under ``root``, sorted: its folders, less hidden ones (``.deleting-*``, probes)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if is_generation_name(p.name) and p.is_dir())


def scene_dir(root: str | Path, generation_id: str, scene_number: int) -> Path:
    return generation_dir(root, generation_id) / f"scene_{scene_number}"


def agent_file(iteration: int, agent: int) -> str:
    """``01_agent1_iteration_1.txt``: two files per iteration, numbered in the order written."""
    number = 2 * (iteration - 1) + agent
    return f"{number:02d}_agent{agent}_iteration_{iteration}.txt"


def image_file(index: int) -> str:
    return f"image_{index}.png"


def attempt_image(attempt: int, index: int) -> Path:
    return Path("attempts") / f"attempt_{attempt}" / image_file(index)
