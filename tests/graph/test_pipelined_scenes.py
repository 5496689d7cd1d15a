"""Pipelined scenes: a scene generates as soon as its own prompt is final and the scene
before it has its winner; no barrier waits for every scene's enhancement. Resuming a crashed
run continues inside the unfinished scenes and repeats nothing that finished."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from factories import make_context
from fakes import SleepyChatModel
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from imageforge.agents.messages import read_payload
from imageforge.graph.checkpoint import serializer
from imageforge.graph.relay import SceneRelay
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.tools.sketch import SketchGenerator

SCENES = [
    "Barista grinds fresh beans at dawn",
    "Close-up of latte art in a ceramic cup",
    "Customer smiles at the first sip by the window",
]


class PerSceneChatModel(SleepyChatModel):
    """Answers like the heuristic agents after a delay that depends on the scene asked about."""

    delays: dict[int, float] = Field(default_factory=dict)
    per_scene: dict[int, int] = Field(default_factory=dict)

    async def _agenerate(self, messages, stop=None, run_manager=None, tool_name=None, **kwargs: Any):
        first_user = next(m for m in messages if isinstance(m, HumanMessage))
        scene = int((read_payload(str(first_user.content)).get("scene") or {}).get("scene_number", 0))
        self.per_scene[scene] = self.per_scene.get(scene, 0) + 1
        await asyncio.sleep(self.delays.get(scene, 0.0))
        return self._reply(messages, tool_name)


class FlakyGenerator(SketchGenerator):
    """Fails (a crash stand-in) while ``broken`` holds the prompt's scene; counts calls per prompt."""

    def __init__(self, broken: str | None = None, sleep_s: float = 0.0) -> None:
        self.broken = broken
        self.sleep_s = sleep_s
        self.prompts: list[str] = []

    def generate(self, prompt: str, **kwargs: Any):
        self.prompts.append(prompt)
        time.sleep(self.sleep_s)
        if self.broken is not None and self.broken in prompt:
            raise RuntimeError("the worker died")
        return super().generate(prompt, **kwargs)


def _request(generation_id: str) -> StoryboardRequest:
    return StoryboardRequest(generation_id=generation_id, concept="Artisan coffee", scenes=SCENES)


def _context(tmp_path: Path, llm, generator) -> Any:
    context = make_context(
        tmp_path,
        llm=llm,
        consistency_threshold=0,
        quality_threshold=0,
        max_retries=0,
        max_enhancement_iterations=1,
        approval_threshold=100,
    )
    context.services.generator = generator
    return context


async def test_a_scene_generates_before_later_prompts_are_final(tmp_path):
    llm = PerSceneChatModel(delays={1: 0.01, 2: 0.15, 3: 0.6})
    context = _context(tmp_path, llm, FlakyGenerator(sleep_s=0.05))
    stamps: dict[tuple[str, int | None], float] = {}

    def on_event(event: dict) -> None:
        stamps.setdefault((event["type"], event.get("scene")), time.perf_counter())

    summary = await run_storyboard(_request("pipe"), context, on_event=on_event)
    assert summary.status == "completed", summary.error
    # Scene 1 finished while scene 3 was still in its critique loop: no enhancement barrier.
    assert stamps[("scene_done", 1)] < stamps[("enhance_done", 3)]
    for k in (1, 2, 3):  # ... and every scene waited for its own prompt and for the previous winner
        assert stamps[("enhance_done", k)] <= stamps[("attempt_started", k)]
        if k > 1:
            assert stamps[("scene_done", k - 1)] <= stamps[("attempt_started", k)]
    scene1, scene2, scene3 = summary.scenes
    assert scene2.attempts[0].reference.path == scene1.winner_path
    assert scene3.attempts[0].reference.path == scene2.winner_path
    assert scene3.attempts[0].anchor.path == scene1.winner_path  # scene 1's winner anchors the board


async def test_a_crashed_run_resumes_inside_unfinished_scenes_and_repeats_nothing(tmp_path):
    saver = InMemorySaver(serde=serializer())
    llm = PerSceneChatModel(delays={1: 0.0, 2: 0.05, 3: 0.1})
    broken = FlakyGenerator(broken=SCENES[1].split()[0])  # scene 2's generation "crashes"
    context = _context(tmp_path, llm, broken)
    crashed = await run_storyboard(_request("crash"), context, checkpointer=saver)
    assert crashed.status == "failed" and "the worker died" in (crashed.error or "")
    assert [s.scene_number for s in crashed.scenes] == [1]
    first = Path(context.trace_root) / "crash" / "scene_1" / "image_1.png"
    stamp, inode = first.stat().st_mtime_ns, first.stat().st_ino
    calls_before = dict(llm.per_scene)

    healthy = FlakyGenerator()
    context.services.generator = healthy
    events: list[dict] = []
    resumed = await run_storyboard(_request("crash"), context, checkpointer=saver, resume=True, on_event=events.append)
    assert resumed.status == "completed", resumed.error
    assert [s.scene_number for s in resumed.scenes] == [1, 2, 3]
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == (stamp, inode)  # scene 1 untouched
    assert {e["scene"] for e in events if e["type"] == "attempt_started"} == {2, 3}
    # Scene 2's prompt was final before the crash: its critique loop did not run again.
    assert llm.per_scene.get(2) == calls_before.get(2)
    assert not any(e["type"] == "enhance_done" and e["scene"] == 2 for e in events)
    assert resumed.scenes[1].attempts[0].reference.path == resumed.scenes[0].winner_path


async def test_a_strict_failure_stops_the_scenes_after_it(tmp_path):
    context = make_context(tmp_path, quality_threshold=100, max_retries=0, strict=True)
    summary = await run_storyboard(_request("strict"), context)
    assert summary.status == "failed"
    assert [s.scene_number for s in summary.scenes] == [1]
    assert summary.error.startswith("scene 1 failed validation in strict mode")
    # A resumed run (a fresh relay) learns the same from the trace instead of waiting forever.
    relay = SceneRelay()
    where = {"trace_root": context.trace_root, "generation_id": "strict"}
    first = await asyncio.wait_for(relay.outcome(1, **where), 5)
    assert first.result is not None and not first.usable
    third = await asyncio.wait_for(relay.outcome(3, **where), 5)
    assert third.result is None and third.blocked == "scene 1 failed validation in strict mode"
