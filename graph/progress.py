"""Turns the event stream into one 0-100 progress figure and a current-step label.

Planning is worth 5 %, enhancement 25 % (shared equally by the scenes), generation 70 %
(each scene's share split between generating and scoring its attempts). The figure only
ever rises, so a retry does not make a progress bar jump back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProgressTracker:
    scenes: int = 0
    enhanced: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)
    partial: dict[int, float] = field(default_factory=dict)
    progress: float = 0.0
    step: str = "queued"

    def update(self, event: dict[str, Any]) -> float:
        kind, scene, data = event.get("type"), event.get("scene"), event.get("data", {})
        if kind == "run_started":
            self.step = "planning"
        elif kind == "plan_ready":
            self.scenes = len(data.get("scenes", [])) or self.scenes
            self.step = "enhancing prompts"
        elif kind == "enhance_done" and scene is not None:
            self.enhanced.add(scene)
        elif kind == "attempt_started" and scene is not None:
            self.step = f"scene {scene}: generating (attempt {data.get('attempt', 1)})"
            self.partial[scene] = max(self.partial.get(scene, 0.0), 0.1)
        elif kind == "variations_generated" and scene is not None:
            self.step = f"scene {scene}: scoring"
            self.partial[scene] = max(self.partial.get(scene, 0.0), 0.6)
        elif kind == "variations_scored" and scene is not None:
            self.step = f"scene {scene}: validating"
            self.partial[scene] = max(self.partial.get(scene, 0.0), 0.9)
        elif kind == "scene_done" and scene is not None:
            self.finished.add(scene)
            self.step = f"scene {scene} done"
        elif kind == "run_done":
            self.step = str(data.get("status", "done"))
            if data.get("status") == "completed":
                self.progress = 100.0
                return self.progress
        self.progress = max(self.progress, self._compute(kind))
        return self.progress

    def _compute(self, kind: Any) -> float:
        if self.scenes == 0:
            return 0.0 if kind != "run_started" else 1.0
        share = 70.0 / self.scenes
        generated = sum(share for _ in self.finished) + sum(
            share * value for scene, value in self.partial.items() if scene not in self.finished
        )
        return round(min(99.0, 5.0 + 25.0 * len(self.enhanced) / self.scenes + generated), 1)
