"""Hands each scene's outcome to the scene after it, inside one storyboard run.

LangGraph runs a graph in super-steps, and a super-step ends only when every task in it has
finished. Scenes are pipelined (scene k generates as soon as its own prompt is final and
scene k-1 has its winner), so all scene pipelines are tasks of one super-step, and the
winner a scene needs comes from a sibling task of that same step. The relay carries it: one
per run (keyed by the run context object and the generation id), written by a scene when
its trace is published, awaited by the next scene.

The relay lives in memory only. After a crash, the scenes that finished in the earlier
process are not run again (their task writes are in the checkpoint), so nothing publishes
them here; ``outcome`` then reads the finished scene's ``scene_result.json``, which the
scene wrote (atomically) before its task could finish.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from imageforge.traces import layout
from imageforge.traces.schemas import SceneResult


@dataclass(frozen=True)
class Outcome:
    """How a scene ended for the scenes after it: its result, or why it produced none."""

    result: SceneResult | None
    blocked: str | None = None

    @property
    def usable(self) -> bool:
        return self.result is not None and self.result.status != "failed"


@dataclass
class SceneRelay:
    """Outcomes by scene number, with waiters woken when one arrives."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    _waiters: dict[int, list[asyncio.Event]] = field(default_factory=dict)
    summary_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def publish(self, scene: int, outcome: Outcome) -> None:
        self.outcomes[scene] = outcome
        for event in self._waiters.pop(scene, []):
            event.set()

    async def outcome(self, scene: int, *, trace_root: str, generation_id: str) -> Outcome:
        """Scene ``scene``'s outcome: published in this run, finished before a crash, or awaited."""
        while scene not in self.outcomes:
            recorded = await asyncio.to_thread(_recorded_outcome, trace_root, generation_id, scene)
            if recorded is not None:
                return recorded
            if scene in self.outcomes:  # published while the file was being read
                break
            event = asyncio.Event()
            self._waiters.setdefault(scene, []).append(event)
            await event.wait()
        return self.outcomes[scene]


def _recorded(trace_root: str, generation_id: str, scene: int) -> SceneResult | None:
    path = layout.scene_dir(trace_root, generation_id, scene) / layout.SCENE_RESULT
    try:
        return SceneResult.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None


def _recorded_outcome(trace_root: str, generation_id: str, scene: int) -> Outcome | None:
    """The outcome the trace records: the scene's result, or "blocked" when an earlier scene
    failed in strict mode (a blocked scene writes nothing); None while it is still to come."""
    result = _recorded(trace_root, generation_id, scene)
    if result is not None:
        return Outcome(result=result)
    for earlier in range(scene - 1, 0, -1):
        found = _recorded(trace_root, generation_id, earlier)
        if found is not None and found.status == "failed":
            return Outcome(result=None, blocked=f"scene {earlier} failed validation in strict mode")
    return None


_relays: dict[tuple[int, str], SceneRelay] = {}


def relay_for(context: Any, generation_id: str) -> SceneRelay:
    """The relay of the run that ``context`` (the run's context object) belongs to.

    Released when the context object is: each run_storyboard call makes its own context.
    """
    key = (id(context), generation_id)
    relay = _relays.get(key)
    if relay is None:
        relay = _relays[key] = SceneRelay()
        weakref.finalize(context, _relays.pop, key, None)
    return relay
