"""The critique loop for one scene: cinematographer -> prompt engineer -> approve or repeat.

Each LLM node retries transient faults (after the client's own retries) through a
RetryPolicy whose ``retry_on`` names them, since the default policy skips most errors; when
the retries are spent, the node's error handler lets the heuristic agent answer that step,
so one failed LLM call never ends a storyboard. Every step writes its trace file as it
finishes, in a worker thread (file I/O never runs on the event loop).
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, RetryPolicy

from imageforge.agents import cinematographer as cinematographer_agent
from imageforge.agents import prompt_engineer as prompt_engineer_agent
from imageforge.agents.errors import LLMTransientError
from imageforge.agents.heuristics import critique_heuristic, enhance_heuristic
from imageforge.agents.schemas import AgentEvent, EnhancementResult, Iteration
from imageforge.graph.cancel import reraise_cancel, stoppable
from imageforge.graph.context import Context
from imageforge.graph.events import emit
from imageforge.graph.selection import best_iteration
from imageforge.graph.services import aservices_for
from imageforge.graph.state import EnhanceInput, EnhanceOutput, EnhanceState
from imageforge.traces.writer import TraceWriter

LLM_RETRY = RetryPolicy(retry_on=LLMTransientError, max_attempts=3, initial_interval=0.5, backoff_factor=2.0)


def _fallback_events(agent: str, error: NodeError) -> list[AgentEvent]:
    cause = error.error
    events = list(getattr(cause, "events", []))
    events.append(AgentEvent(agent=agent, kind="retry", detail=f"{LLM_RETRY.max_attempts} attempts failed: {cause}"))
    events.append(AgentEvent(agent=agent, kind="fallback", detail="the heuristic agent answered this step"))
    return events


def _writer(state: EnhanceState, runtime: Runtime[Context]) -> TraceWriter:
    return TraceWriter(runtime.context.trace_root, state.generation_id)


async def _draft_update(state: EnhanceState, runtime: Runtime[Context], enhanced, events, started: float) -> dict:
    iteration = len(state.iterations) + 1
    writer = _writer(state, runtime)
    await asyncio.to_thread(writer.cinematographer, state.scene.scene_number, iteration, enhanced, events)
    return {"draft": enhanced, "draft_events": events, "draft_started": started}


async def cinematographer(state: EnhanceState, runtime: Runtime[Context]) -> dict:
    """Enhance the prompt, answering the last critique."""
    started = time.perf_counter()
    iteration = len(state.iterations) + 1
    if iteration == 1:
        await asyncio.to_thread(_writer(state, runtime).original_prompt, state.scene.scene_number, state.scene.prompt)
    last = state.iterations[-1] if state.iterations else None
    enhanced, events = await cinematographer_agent.enhance(
        state.scene,
        state.markers,
        previous=last.enhanced if last else None,
        critique=last.critique if last else None,
        iteration=iteration,
        llm=(await aservices_for(runtime.context)).llm,
    )
    return await _draft_update(state, runtime, enhanced, events, started)


async def cinematographer_fallback(state: EnhanceState, runtime: Runtime[Context], error: NodeError) -> Command:
    reraise_cancel(error.error)
    last = state.iterations[-1] if state.iterations else None
    enhanced = enhance_heuristic(
        state.scene,
        state.markers,
        previous=last.enhanced if last else None,
        critique=last.critique if last else None,
        iteration=len(state.iterations) + 1,
    ).model_copy(update={"source": "fallback"})
    events = _fallback_events("cinematographer", error)
    update = await _draft_update(state, runtime, enhanced, events, time.perf_counter())
    return Command(update=update, goto="prompt_engineer")


async def _review_update(state: EnhanceState, runtime: Runtime[Context], critique, events) -> dict:
    assert state.draft is not None, "prompt_engineer runs only after the cinematographer"
    number = len(state.iterations) + 1
    iteration = Iteration(
        iteration=number,
        enhanced=state.draft,
        critique=critique,
        events=[*state.draft_events, *events],
        elapsed_s=round(time.perf_counter() - state.draft_started, 4),
    )
    threshold = runtime.context.settings.approval_threshold
    writer = _writer(state, runtime)
    await asyncio.to_thread(writer.prompt_engineer, state.scene.scene_number, number, critique, threshold, events)
    emit(
        "enhance_iteration",
        f"scene {state.scene.scene_number}: iteration {number} scored {critique.overall:.1f}",
        scene=state.scene.scene_number,
        iteration=number,
        overall=critique.overall,
        subject_kept=critique.subject_kept,
        max_iterations=runtime.context.settings.max_enhancement_iterations,
    )
    return {"iterations": [iteration], "draft": None, "draft_events": []}


async def prompt_engineer(state: EnhanceState, runtime: Runtime[Context]) -> dict:
    """Score the draft on five dimensions and critique it."""
    assert state.draft is not None, "prompt_engineer runs only after the cinematographer"
    critique, events = await prompt_engineer_agent.review(
        state.draft, state.scene, state.markers, llm=(await aservices_for(runtime.context)).llm
    )
    return await _review_update(state, runtime, critique, events)


async def prompt_engineer_fallback(state: EnhanceState, runtime: Runtime[Context], error: NodeError) -> Command:
    reraise_cancel(error.error)
    assert state.draft is not None
    critique = critique_heuristic(state.draft, state.scene, state.markers).model_copy(update={"source": "fallback"})
    update = await _review_update(state, runtime, critique, _fallback_events("prompt_engineer", error))
    return Command(update=update, goto=_route(state.iterations + update["iterations"], runtime.context))


def _route(iterations: list[Iteration], context: Context) -> Literal["cinematographer", "finalize"]:
    if not iterations:
        raise ValueError("the loop is routed only after the prompt engineer has scored a draft")
    if iterations[-1].critique.overall >= context.settings.approval_threshold:
        return "finalize"
    if len(iterations) >= context.settings.max_enhancement_iterations:
        return "finalize"
    return "cinematographer"


def route_after_review(state: EnhanceState, runtime: Runtime[Context]) -> Literal["cinematographer", "finalize"]:
    """Stop at the approval threshold or the iteration cap; otherwise critique again."""
    return _route(state.iterations, runtime.context)


def _faithful_pass(state: EnhanceState, runtime: Runtime[Context], number: int) -> Iteration:
    """A heuristic version built from the scene's prompt, critiqued and traced like any other."""
    started = time.perf_counter()
    enhanced = enhance_heuristic(state.scene, state.markers, iteration=number)
    enhanced = enhanced.model_copy(
        update={"addressed": "every version lost the scene's subject: " + enhanced.addressed}
    )
    critique = critique_heuristic(enhanced, state.scene, state.markers)
    event = AgentEvent(
        agent="prompt_engineer",
        kind="fallback",
        detail="every version lost the scene's subject; rebuilt from the scene",
    )
    writer = _writer(state, runtime)
    writer.cinematographer(state.scene.scene_number, number, enhanced, [event])
    writer.prompt_engineer(state.scene.scene_number, number, critique, runtime.context.settings.approval_threshold, [])
    return Iteration(
        iteration=number,
        enhanced=enhanced,
        critique=critique,
        events=[event],
        elapsed_s=round(time.perf_counter() - started, 4),
    )


async def finalize(state: EnhanceState, runtime: Runtime[Context]) -> dict:
    """Keep the best-scoring version, not merely the last, and never one that lost the subject.

    When every version lost the scene's subject (an LLM that kept drifting), a heuristic pass
    from the scene's own prompt, which names it, is added and kept instead.
    """
    settings = runtime.context.settings
    last = state.iterations[-1]
    iterations = list(state.iterations)
    if not any(i.critique.subject_kept for i in iterations):
        iterations.append(await asyncio.to_thread(_faithful_pass, state, runtime, len(iterations) + 1))
    result = EnhancementResult(
        scene_number=state.scene.scene_number,
        original_prompt=state.scene.prompt,
        iterations=iterations,
        best_iteration=best_iteration(iterations),
        approval_threshold=settings.approval_threshold,
        stop_reason="approved" if last.critique.overall >= settings.approval_threshold else "max_iterations",
    )
    await asyncio.to_thread(_writer(state, runtime).enhancement, result)
    emit(
        "enhance_done",
        f"scene {result.scene_number}: kept iteration {result.best_iteration} at {result.best.critique.overall:.1f}",
        scene=result.scene_number,
        best_iteration=result.best_iteration,
        overall=result.best.critique.overall,
        iterations=len(result.iterations),
        stop_reason=result.stop_reason,
    )
    return {"enhancements": {result.scene_number: result}}


builder = StateGraph(EnhanceState, context_schema=Context, input_schema=EnhanceInput, output_schema=EnhanceOutput)
builder.add_node(
    "cinematographer",
    stoppable(cinematographer),
    retry_policy=LLM_RETRY,
    error_handler=cinematographer_fallback,
)
builder.add_node(
    "prompt_engineer",
    stoppable(prompt_engineer),
    retry_policy=LLM_RETRY,
    error_handler=prompt_engineer_fallback,
)
builder.add_node("finalize", stoppable(finalize))
builder.add_edge(START, "cinematographer")
builder.add_edge("cinematographer", "prompt_engineer")
builder.add_conditional_edges("prompt_engineer", route_after_review, ["cinematographer", "finalize"])
builder.add_edge("finalize", END)

enhancement_graph = builder.compile(name="enhance_scene")
