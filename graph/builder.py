"""The storyboard graph: plan -> one pipelined turn per scene -> finish.

```
START -> plan ==Send per scene==> scene_turn (subgraph: enhance -> wait_turn -> scene -> publish) -> finish -> END
```
Every scene's turn starts at once: its critique loop runs concurrently with the others, and
it generates as soon as its own prompt is final and the previous scene has its winner (the
reference it chains from; graph.pipeline). No barrier waits for every prompt. Each turn
checkpoints in its own namespace, so a durable checkpointer resumes a killed run inside
every unfinished scene and never repeats a finished one.

Nodes never block the event loop: trace writes, image encoding and model calls run in
worker threads (``asyncio.to_thread``), so the graph also runs under ``langgraph dev``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from datetime import UTC, datetime
from typing import Literal

from langgraph.config import get_config
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
from imageforge.graph.derive import keep_scenes
from imageforge.graph.enhancement import LLM_RETRY
from imageforge.graph.events import emit
from imageforge.graph.pipeline import scene_turn_graph
from imageforge.graph.services import aservices_for, services_for
from imageforge.graph.state import InputState, OutputState, SceneTurnInput, State
from imageforge.tools.schemas import ReferenceImage
from imageforge.tools.seeds import random_base_seed
from imageforge.traces.schemas import RunStatus, RunSummary, llm_events
from imageforge.traces.writer import TraceWriter

_GENERATION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


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
        generation_id=_generation_id(state),
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


def _generation_id(state: State) -> str:
    if state.generation_id is None:
        raise ValueError("the generation id is set by the plan node")
    return state.generation_id


def new_generation_id() -> str:
    """A generation id for a run that came without one (LangGraph Studio): the thread's id when
    it makes a valid trace folder name, so a resumed thread keeps its folder; else a fresh one."""
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # outside a run
        thread = None
    if isinstance(thread, str) and _GENERATION_ID.match(thread):
        return thread
    return f"gen-{uuid.uuid4().hex[:12]}"


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


async def _plan_update(
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
        "generation_id": _generation_id(state),
        "plan": plan,
        "anchor": anchor,
        "base_seed": random_base_seed() if seed is None else seed,
        "started_at": _now(),
        "warnings": warnings,
        "plan_events": events or [],
    }
    provisional = State(**{**state.__dict__, **update, "warnings": warnings})
    summary = summarize(provisional, runtime.context, "running")
    await asyncio.to_thread(TraceWriter(runtime.context.trace_root, _generation_id(state)).summary, summary)
    emit(
        "plan_ready",
        f"{len(plan.scenes)} scene(s) planned",
        scenes=[s.model_dump() for s in plan.scenes],
        markers=plan.markers.model_dump(),
        source=plan.source,
    )
    return update


async def _reused(state: State, runtime: Runtime[Context]) -> dict:
    """Scenes kept from an earlier generation, copied into this one."""
    if not state.reuse_from or state.keep_scenes <= 0:
        return {}
    results, enhancements = await asyncio.to_thread(
        keep_scenes, runtime.context.trace_root, state.reuse_from, _generation_id(state), state.keep_scenes
    )
    for number in sorted(results):
        emit(
            "scene_done",
            f"scene {number}: kept from {state.reuse_from}",
            scene=number,
            reused=True,
            result=results[number].model_dump(mode="json"),
        )
    return {"results": results, "enhancements": enhancements}


async def plan(state: State, runtime: Runtime[Context]) -> dict:
    """Scenes from the planner, the caller's explicit scenes or plan; kept scenes copied."""
    state = dataclasses.replace(state, generation_id=state.generation_id or new_generation_id())
    generation_id = _generation_id(state)
    services = await aservices_for(runtime.context)  # built off the event loop, once per process
    await asyncio.to_thread(TraceWriter(runtime.context.trace_root, generation_id).ensure_writable)
    emit("run_started", f"generation {generation_id}", generation_id=generation_id)
    if state.plan is not None:
        return {**await _plan_update(state, runtime, state.plan, []), **await _reused(state, runtime)}
    if state.scenes:
        return await _plan_update(state, runtime, _explicit_plan(state), [])
    storyboard, events = await planner.plan(state.concept, state.target_duration_s, state.num_scenes, llm=services.llm)
    return await _plan_update(
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
    state = dataclasses.replace(state, generation_id=state.generation_id or new_generation_id())
    storyboard = plan_heuristic(state.concept, state.target_duration_s, state.num_scenes).model_copy(
        update={"source": "fallback"}
    )
    warning = (
        f"planner: LLM failed after {LLM_RETRY.max_attempts} attempts ({error.error}); the heuristic planner answered"
    )
    update = await _plan_update(state, runtime, storyboard, [warning])
    return Command(update=update, goto=start_scenes(State(**{**state.__dict__, **update})))


def _turn(state: State, plan: StoryboardPlan, scene: ScenePlan) -> Send:
    named = dict.fromkeys([*scene.character_ids, *state.characters])
    characters = [ref for cid in named for ref in state.character_references.get(cid, [])]
    return Send(
        "scene_turn",
        SceneTurnInput(
            generation_id=_generation_id(state),
            scene=scene,
            markers=plan.markers,
            base_seed=state.base_seed,
            anchor=state.anchor,
            characters=characters,
            kept=dict(state.results),
            total=len(plan.scenes),
        ),
    )


def start_scenes(state: State) -> list[Send] | Literal["finish"]:
    """Fan out: every scene not kept from an earlier generation starts its turn now."""
    if state.plan is None:
        raise ValueError("scenes start only after planning")
    plan = state.plan
    turns = [_turn(state, plan, s) for s in plan.scenes if s.scene_number not in state.results]
    return turns or "finish"


def _strict_failure(state: State) -> str | None:
    failed = [state.results[k] for k in sorted(state.results) if state.results[k].status == "failed"]
    if not failed:
        return None
    first = failed[0]
    return f"scene {first.scene_number} failed validation in strict mode: {first.error['error'] if first.error else ''}"


async def finish(state: State, runtime: Runtime[Context]) -> dict:
    """The final summary.json: completed, or failed at the first scene that failed in strict mode."""
    error = state.error or _strict_failure(state)
    state = dataclasses.replace(state, error=error)
    status: RunStatus = "failed" if error else "completed"
    summary = summarize(state, runtime.context, status)
    await asyncio.to_thread(TraceWriter(runtime.context.trace_root, _generation_id(state)).summary, summary)
    emit("run_done", f"generation {state.generation_id}: {status}", status=status, elapsed_s=summary.elapsed_s)
    return {"error": error}


builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
builder.add_node(
    "plan",
    stoppable(plan),
    retry_policy=LLM_RETRY,
    error_handler=plan_fallback,  # its Command goes where the conditional edge below would
)
builder.add_node("scene_turn", scene_turn_graph)
builder.add_node("finish", stoppable(finish))
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", start_scenes, ["scene_turn", "finish"])
builder.add_edge("scene_turn", "finish")
builder.add_edge("finish", END)

graph = builder.compile(name="ImageForge storyboard")
"""The compiled storyboard graph, without a checkpointer (langgraph.json, Studio, the CLI)."""
