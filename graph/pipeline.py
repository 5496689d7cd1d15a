"""One scene's whole way through a storyboard: enhance its prompt, wait for its turn, generate.

```
START -> enhance_scene (subgraph) -> wait_turn --its turn--> scene (subgraph) -> publish -> END
                                              \\--an earlier scene failed-------> publish
```
The storyboard graph sends one of these per scene, all at once. A scene's turn comes when
its own prompt is final and the scene before it has its winner (the winner is its
reference), so scene 1 generates while later scenes are still in their critique loops and
no scene waits for every prompt to be final. Winners pass from scene to scene through the
run's relay (graph.relay), since the scenes are sibling tasks of one LangGraph super-step.
Each subgraph checkpoints under its task's namespace, so a resumed run continues every
unfinished scene where it stopped and never repeats a finished one.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from imageforge.agents.schemas import EnhancementResult
from imageforge.agents.usage import usage_totals
from imageforge.graph.cancel import stoppable
from imageforge.graph.context import Context
from imageforge.graph.derive import anchor_from, winner_reference
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.events import emit
from imageforge.graph.relay import Outcome, SceneRelay, relay_for
from imageforge.graph.scene import scene_graph
from imageforge.graph.state import SceneTurnInput, SceneTurnOutput, SceneTurnState
from imageforge.tools.schemas import ReferenceImage
from imageforge.traces.reader import read_summary
from imageforge.traces.schemas import SceneResult, llm_events
from imageforge.traces.writer import TraceWriter


async def _outcome(state: SceneTurnState, runtime: Runtime[Context], scene: int) -> Outcome:
    if scene in state.kept:
        return Outcome(result=state.kept[scene])
    relay = relay_for(runtime.context, state.generation_id)
    return await relay.outcome(scene, trace_root=runtime.context.trace_root, generation_id=state.generation_id)


def _blocked_by(scene: int, outcome: Outcome) -> str:
    if outcome.blocked is not None:
        return outcome.blocked
    return f"scene {scene} failed validation in strict mode"


def _unique(references: list[ReferenceImage]) -> list[ReferenceImage]:
    return [r for i, r in enumerate(references) if all(r.path != c.path for c in references[:i])]


async def wait_turn(state: SceneTurnState, runtime: Runtime[Context]) -> dict:
    """Wait for the previous scene's winner, then line up this scene's reference candidates."""
    number = state.scene.scene_number
    update: dict = {"enhancement": state.enhancements[number]}
    if number == 1:
        return {**update, "candidates": _unique([*([state.anchor] if state.anchor else []), *state.characters])}
    previous = await _outcome(state, runtime, number - 1)
    if not previous.usable or previous.result is None:
        return {**update, "blocked": _blocked_by(number - 1, previous)}
    chained = winner_reference(previous.result)
    anchor = state.anchor
    if anchor is None:  # scene 1's winner anchors a storyboard without a user image
        first = previous.result if number == 2 else (await _outcome(state, runtime, 1)).result
        anchor = None if first is None else anchor_from(winner_reference(first))
    candidates = _unique([chained, *([anchor] if anchor else []), *state.characters])
    return {**update, "anchor": anchor, "candidates": candidates, "chain_scene": chained.scene_number}


def route_turn(state: SceneTurnState) -> Literal["scene", "publish"]:
    """Generate, unless an earlier scene failed and the storyboard stops there."""
    return "publish" if state.blocked else "scene"


def _record(trace_root: str, generation_id: str, result: SceneResult, enhancement: EnhancementResult) -> None:
    """Add one finished scene to the running summary.json (read, update, atomic write)."""
    summary = read_summary(trace_root, generation_id)
    scenes = {s.scene_number: s for s in summary.scenes} | {result.scene_number: result}
    enhancements = {e.scene_number: e for e in summary.enhancements} | {enhancement.scene_number: enhancement}
    updated = summary.model_copy(
        update={
            "scenes": [scenes[k] for k in sorted(scenes)],
            "enhancements": [enhancements[k] for k in sorted(enhancements)],
            "warnings": [*summary.warnings, *result.warnings],
        }
    )
    updated = updated.model_copy(update={"llm_usage": usage_totals(llm_events(updated))})
    TraceWriter(trace_root, generation_id).summary(updated)


async def _record_running(relay: SceneRelay, context: Context, state: SceneTurnState, result: SceneResult) -> None:
    async with relay.summary_lock:  # scenes finish concurrently; one read-modify-write at a time
        await asyncio.to_thread(
            _record, context.trace_root, state.generation_id, result, state.enhancements[result.scene_number]
        )


async def publish(state: SceneTurnState, runtime: Runtime[Context]) -> dict:
    """Hand the outcome to the next scene, record the scene in summary.json, announce it."""
    number = state.scene.scene_number
    relay = relay_for(runtime.context, state.generation_id)
    if state.blocked is not None:
        relay.publish(number, Outcome(result=None, blocked=state.blocked))
        return {}
    result = state.results[number]
    await _record_running(relay, runtime.context, state, result)
    emit(
        "scene_done",
        f"scene {number}: {result.status}",
        scene=number,
        total=state.total or None,
        result=result.model_dump(mode="json"),
    )
    relay.publish(number, Outcome(result=result))  # after the event, so progress reads in scene order
    return {"warnings": result.warnings}


builder = StateGraph(SceneTurnState, context_schema=Context, input_schema=SceneTurnInput, output_schema=SceneTurnOutput)
builder.add_node("enhance_scene", enhancement_graph)
builder.add_node("wait_turn", stoppable(wait_turn))
builder.add_node("scene", scene_graph)
builder.add_node("publish", stoppable(publish))
builder.add_edge(START, "enhance_scene")
builder.add_edge("enhance_scene", "wait_turn")
builder.add_conditional_edges("wait_turn", route_turn, ["scene", "publish"])
builder.add_edge("scene", "publish")
builder.add_edge("publish", END)

scene_turn_graph = builder.compile(name="scene_turn")
