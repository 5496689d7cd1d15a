"""The storyboard graph: plan -> enhance every scene concurrently -> scenes in order -> finish.

```
START -> plan ==Send per scene==> enhance_scene (subgraph) -> gather -> [next] ==Send==> scene (subgraph)
                                                                             ^               |
                                                                             +---- chain <---+
                                                                     [next] -> finish -> END
```
Scenes enhance concurrently because they do not depend on each other; they then generate
one at a time because each needs the previous winner as its reference. Every scene is its
own super-step, so a durable checkpointer resumes a killed run after its last finished scene.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from imageforge.agents import planner
from imageforge.agents.heuristics import MAX_SCENES, plan_heuristic
from imageforge.agents.schemas import AgentEvent, ScenePlan, StoryboardPlan
from imageforge.agents.usage import usage_totals
from imageforge.graph.cancel import reraise_cancel, stoppable
from imageforge.graph.context import Context
from imageforge.graph.derive import anchor_from, keep_scenes, winner_reference
from imageforge.graph.enhancement import LLM_RETRY, enhancement_graph
from imageforge.graph.events import emit
from imageforge.graph.scene import scene_graph
from imageforge.graph.services import services_for
from imageforge.graph.state import EnhanceInput, InputState, OutputState, SceneInput, State
from imageforge.tools.schemas import ReferenceImage
from imageforge.tools.seeds import random_base_seed
from imageforge.traces.schemas import RunStatus, RunSummary, llm_events
from imageforge.traces.writer import TraceWriter


def _now() -> str:
    return datetime.now(UTC).isoformat()


def summarize(state: State, context: Context, status: RunStatus) -> RunSummary:
    """summary.json for the run as it stands, with the LLM usage summed over every agent event."""
    summary = _summary(state, context, status)
    return summary.model_copy(update={"llm_usage": usage_totals(llm_events(summary))})


def _summary(state: State, context: Context, status: RunStatus) -> RunSummary:
    started = datetime.fromisoformat(state.started_at) if state.started_at else datetime.now(UTC)
    finished = None if status == "running" else datetime.now(UTC)
    return RunSummary(
        generation_id=state.generation_id,
        status=status,
        concept=state.concept,
        plan=state.plan,
        markers=state.plan.markers if state.plan else None,
        settings={**context.settings.model_dump(mode="json"), "base_seed": state.base_seed},
        backends=services_for(context).describe(),
        scenes=[state.results[k] for k in sorted(state.results)],
        enhancements=[state.enhancements[k] for k in sorted(state.enhancements)],
        warnings=state.warnings,
        plan_events=state.plan_events,
        started_at=started,
        finished_at=finished,
        elapsed_s=None if finished is None else round((finished - started).total_seconds(), 3),
        error=state.error,
    )


def _explicit_plan(state: State) -> StoryboardPlan:
    """Scenes given by the caller; the markers still come from the concept."""
    if len(state.scenes or []) > MAX_SCENES:
        raise ValueError(f"`scenes` may hold at most {MAX_SCENES} prompts, got {len(state.scenes or [])}.")
    markers = plan_heuristic(state.concept, state.target_duration_s, len(state.scenes or [])).markers
    per_scene = state.scene_characters or []
    scenes = [
        ScenePlan(scene_number=i, prompt=text, character_ids=list(per_scene[i - 1]) if i <= len(per_scene) else [])
        for i, text in enumerate(state.scenes or [], start=1)
    ]
    return StoryboardPlan(
        concept=state.concept, target_duration_s=state.target_duration_s, scenes=scenes, markers=markers
    )


def _plan_update(
    state: State,
    runtime: Runtime[Context],
    plan: StoryboardPlan,
    warnings: list[str],
    events: list[AgentEvent] | None = None,
) -> dict:
    anchor = None
    if state.reference_path:
        anchor = ReferenceImage(id="user", kind="user", path=state.reference_path, keywords=[])
    seed = runtime.context.settings.seed
    update = {
        "plan": plan,
        "anchor": anchor,
        "base_seed": random_base_seed() if seed is None else seed,
        "started_at": _now(),
        "next_scene": 1,
        "warnings": warnings,
        "plan_events": events or [],
    }
    provisional = State(**{**state.__dict__, **update, "warnings": warnings})
    TraceWriter(runtime.context.trace_root, state.generation_id).summary(
        summarize(provisional, runtime.context, "running")
    )
    emit(
        "plan_ready",
        f"{len(plan.scenes)} scene(s) planned",
        scenes=[s.model_dump() for s in plan.scenes],
        markers=plan.markers.model_dump(),
        source=plan.source,
    )
    return update


def _reused(state: State, runtime: Runtime[Context]) -> dict:
    """Scenes kept from an earlier generation, and the chain state after them."""
    if not state.reuse_from or state.keep_scenes <= 0:
        return {}
    results, enhancements = keep_scenes(
        runtime.context.trace_root, state.reuse_from, state.generation_id, state.keep_scenes
    )
    previous = winner_reference(results[max(results)])
    anchor = None if state.reference_path else anchor_from(winner_reference(results[1]))
    for number in sorted(results):
        emit(
            "scene_done",
            f"scene {number}: kept from {state.reuse_from}",
            scene=number,
            reused=True,
            result=results[number].model_dump(mode="json"),
        )
    return {
        "results": results,
        "enhancements": enhancements,
        "previous": previous,
        "next_scene": max(results) + 1,
        **({"anchor": anchor} if anchor else {}),
    }


async def plan(state: State, runtime: Runtime[Context]) -> dict:
    """Scenes from the planner, the caller's explicit scenes or plan; kept scenes copied."""
    TraceWriter(runtime.context.trace_root, state.generation_id).ensure_writable()
    emit("run_started", f"generation {state.generation_id}", generation_id=state.generation_id)
    if state.plan is not None:
        return {**_plan_update(state, runtime, state.plan, []), **_reused(state, runtime)}
    if state.scenes:
        return _plan_update(state, runtime, _explicit_plan(state), [])
    storyboard, events = await planner.plan(
        state.concept, state.target_duration_s, state.num_scenes, llm=services_for(runtime.context).llm
    )
    return _plan_update(
        state,
        runtime,
        storyboard,
        [f"planner: [{e.kind}] {e.detail}" for e in events if e.kind == "fallback"],
        events,
    )


async def plan_fallback(state: State, runtime: Runtime[Context], error: NodeError) -> Command:
    reraise_cancel(error.error)
    if state.plan is not None or state.scenes:
        raise error.error  # the caller's own scenes: replacing them with a planned storyboard would hide the error
    storyboard = plan_heuristic(state.concept, state.target_duration_s, state.num_scenes).model_copy(
        update={"source": "fallback"}
    )
    warning = (
        f"planner: LLM failed after {LLM_RETRY.max_attempts} attempts ({error.error}); the heuristic planner answered"
    )
    update = _plan_update(state, runtime, storyboard, [warning])
    return Command(update=update, goto=[_enhance_send(state.generation_id, storyboard, s) for s in storyboard.scenes])


def _enhance_send(generation_id: str, storyboard: StoryboardPlan, scene: ScenePlan) -> Send:
    return Send("enhance_scene", EnhanceInput(generation_id=generation_id, scene=scene, markers=storyboard.markers))


def enhance_all(state: State) -> list[Send]:
    """Fan out: one enhancement loop per scene, all at once."""
    if state.plan is None:
        raise ValueError("enhancement fans out only after planning")
    return [
        _enhance_send(state.generation_id, state.plan, s)
        for s in state.plan.scenes
        if s.scene_number not in state.enhancements
    ]


def next_step(state: State) -> Send | Literal["finish"]:
    """The next scene in order, or the end (all done, or a strict scene failed)."""
    if state.plan is None:
        raise ValueError("scenes run only after planning")
    if state.error is not None or state.next_scene > len(state.plan.scenes):
        return "finish"
    scene = state.plan.scenes[state.next_scene - 1]
    named = dict.fromkeys([*scene.character_ids, *state.characters])
    characters = [ref for cid in named for ref in state.character_references.get(cid, [])]
    candidates = [r for r in (state.previous, state.anchor) if r is not None] + characters
    unique = [r for i, r in enumerate(candidates) if all(r.path != c.path for c in candidates[:i])]
    return Send(
        "scene",
        SceneInput(
            generation_id=state.generation_id,
            scene=scene,
            enhancement=state.enhancements[scene.scene_number],
            base_seed=state.base_seed,
            candidates=unique,
            anchor=state.anchor,
            chain_scene=state.previous.scene_number if state.previous else None,
        ),
    )


async def gather(state: State, runtime: Runtime[Context]) -> dict:
    """Join after the concurrent enhancement: record every scene's final prompt."""
    TraceWriter(runtime.context.trace_root, state.generation_id).summary(summarize(state, runtime.context, "running"))
    return {}


async def chain(state: State, runtime: Runtime[Context]) -> dict:
    """The finished scene's winner becomes the next scene's reference."""
    number = state.next_scene
    result = state.results[number]
    update: dict = {"next_scene": number + 1, "warnings": result.warnings}
    if result.status == "failed":
        update["error"] = (
            f"scene {number} failed validation in strict mode: {result.error['error'] if result.error else ''}"
        )
    else:
        winner = winner_reference(result)
        update["previous"] = winner
        if state.anchor is None:
            update["anchor"] = anchor_from(winner)
    merged = State(**{**state.__dict__, **update, "warnings": [*state.warnings, *result.warnings]})
    TraceWriter(runtime.context.trace_root, state.generation_id).summary(summarize(merged, runtime.context, "running"))
    emit(
        "scene_done",
        f"scene {number}: {result.status}",
        scene=number,
        total=len(state.plan.scenes) if state.plan else None,
        result=result.model_dump(mode="json"),
    )
    return update


async def finish(state: State, runtime: Runtime[Context]) -> dict:
    status: RunStatus = "failed" if state.error else "completed"
    summary = summarize(state, runtime.context, status)
    TraceWriter(runtime.context.trace_root, state.generation_id).summary(summary)
    emit("run_done", f"generation {state.generation_id}: {status}", status=status, elapsed_s=summary.elapsed_s)
    return {}


builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
builder.add_node(
    "plan", stoppable(plan), retry_policy=LLM_RETRY, error_handler=plan_fallback, destinations=("enhance_scene",)
)
builder.add_node("enhance_scene", enhancement_graph)
builder.add_node("gather", stoppable(gather))
builder.add_node("scene", scene_graph)
builder.add_node("chain", stoppable(chain))
builder.add_node("finish", stoppable(finish))
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", enhance_all, ["enhance_scene"])
builder.add_edge("enhance_scene", "gather")
builder.add_conditional_edges("gather", next_step, ["scene", "finish"])
builder.add_edge("scene", "chain")
builder.add_conditional_edges("chain", next_step, ["scene", "finish"])
builder.add_edge("finish", END)

graph = builder.compile(name="ImageForge storyboard")
"""The compiled storyboard graph, without a checkpointer (langgraph.json, Studio, the CLI)."""
