"""The trace viewer's view of a trace: each scene's plan, critique loop and attempts, joined
by scene number, with file URLs relative to the trace folder (what the templates show)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imageforge.traces.reader import TraceDocument

__all__ = ["DIMENSIONS", "scene_views"]

#: The prompt engineer's dimensions, in the order the pages show them.
DIMENSIONS = ("completeness", "specificity", "professionalism", "cinematography", "brand_alignment")


def _relative(path: str | None, folder: Path) -> str | None:
    """A recorded path as the trace-file URL suffix, or None when it lies outside the trace."""
    if not path:
        return None
    relative = os.path.relpath(Path(path).resolve(), folder.resolve())
    return None if relative.startswith("..") else relative.replace(os.sep, "/")


def scene_views(document: TraceDocument, folder: Path) -> list[dict[str, Any]]:
    """Everything a scene section shows, joined by scene number: plan, loop, attempts."""
    summary = document.summary
    planned = {s.scene_number: s for s in (summary.plan.scenes if summary.plan else [])}
    enhancements = {e.scene_number: e for e in summary.enhancements}
    results = {r.scene_number: r for r in summary.scenes}
    views = []
    for number in sorted(set(planned) | set(enhancements) | set(results)):
        result = results.get(number)
        attempts = []
        winner = (result.winner_attempt, result.winner.index) if result and result.winner else None
        for attempt in result.attempts if result else []:
            attempts.append(
                {
                    "attempt": attempt,
                    "reference_url": _relative(attempt.reference.path if attempt.reference else None, folder),
                    "variations": [
                        {
                            "score": v,
                            "url": _relative(v.path, folder),
                            "winner": winner == (attempt.attempt, v.index),
                        }
                        for v in sorted(attempt.variations, key=lambda v: v.index)
                    ],
                }
            )
        views.append(
            {
                "number": number,
                "plan": planned.get(number),
                "enhancement": enhancements.get(number),
                "result": result,
                "attempts": attempts,
                "winner_url": _relative(result.winner_path, folder) if result else None,
            }
        )
    return views
