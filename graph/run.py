"""Running one storyboard: the entry point the CLI and the API share.

It streams the graph's custom events to ``on_event``, stops at a node boundary when
``should_stop`` says so, and always leaves summary.json in a final state (completed,
failed or cancelled), so a trace never claims to be running when nothing runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field, model_validator

from imageforge.agents.heuristics import MAX_SCENES
from imageforge.agents.schemas import StoryboardPlan
from imageforge.graph.builder import builder, graph
from imageforge.graph.cancel import RunCancelled
from imageforge.graph.context import Context
from imageforge.graph.state import InputState, OutputState, State
from imageforge.tools.schemas import ReferenceImage
from imageforge.traces.reader import TraceNotFoundError, read_summary
from imageforge.traces.schemas import RunStatus, RunSummary
from imageforge.traces.writer import TraceWriter

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class StoryboardRequest(BaseModel):
    """What to storyboard. Settings and backends travel separately, in the run context."""

    generation_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    concept: str = Field(min_length=1, max_length=4000)
    target_duration_s: float | None = Field(None, gt=0, le=600)
    num_scenes: int | None = Field(None, ge=1, le=MAX_SCENES)
    scenes: list[str] | None = Field(None, min_length=1, max_length=MAX_SCENES)
    reference_path: str | None = None
    plan: StoryboardPlan | None = Field(None, description="An explicit plan; skips the planner.")
    reuse_from: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Generation whose first scenes are kept."
    )
    keep_scenes: int = Field(0, ge=0, le=MAX_SCENES, description="How many leading scenes of `reuse_from` to keep.")
    character_references: dict[str, list[ReferenceImage]] = Field(
        default_factory=dict, description="Character id -> references; scenes whose plan names the id use them."
    )
    characters: list[str] = Field(default_factory=list, description="Character ids every scene uses.")
    scene_characters: list[list[str]] | None = Field(None, description="Character ids per explicit scene.")

    @model_validator(mode="after")
    def _consistent(self) -> StoryboardRequest:
        if self.scenes is not None and any(not s.strip() for s in self.scenes):
            raise ValueError("`scenes` must not contain empty prompts")
        if self.keep_scenes and not self.reuse_from:
            raise ValueError("`keep_scenes` needs `reuse_from`")
        if self.keep_scenes and self.plan is None:
            raise ValueError("`keep_scenes` needs the `plan` to continue with")
        if self.plan is not None and self.keep_scenes >= len(self.plan.scenes):
            raise ValueError("`keep_scenes` must leave at least one scene of `plan` to generate")
        if self.scene_characters is not None and len(self.scene_characters) != len(self.scenes or []):
            raise ValueError("`scene_characters` needs one list per explicit scene in `scenes`")
        named = {*self.characters, *(cid for ids in self.scene_characters or [] for cid in ids)}
        if unknown := sorted(named - set(self.character_references)):
            raise ValueError(f"characters {unknown} have no entry in `character_references`")
        return self


def _finalize(context: Context, request: StoryboardRequest, status: RunStatus, error: str | None) -> RunSummary:
    try:
        summary = read_summary(context.trace_root, request.generation_id)
    except (TraceNotFoundError, ValueError):
        summary = RunSummary(
            generation_id=request.generation_id,
            status=status,
            concept=request.concept,
            settings=context.settings.model_dump(mode="json"),
            started_at=datetime.now(UTC),
        )
    finished = datetime.now(UTC)
    summary = summary.model_copy(
        update={
            "status": status,
            "error": error if error is not None else summary.error,
            "finished_at": finished,
            "elapsed_s": round((finished - summary.started_at).total_seconds(), 3),
        }
    )
    try:
        TraceWriter(context.trace_root, request.generation_id).summary(summary)
    except OSError:
        logger.exception("could not write the final summary of %s", request.generation_id)
    return summary


StoryboardGraph = CompiledStateGraph[State, Context, InputState, OutputState]

_compiled_by_saver: weakref.WeakKeyDictionary[BaseCheckpointSaver, StoryboardGraph] = weakref.WeakKeyDictionary()


def _compiled(checkpointer: BaseCheckpointSaver | None) -> StoryboardGraph:
    """The storyboard graph bound to a checkpointer, compiled once per checkpointer."""
    if checkpointer is None:
        return graph
    if checkpointer not in _compiled_by_saver:
        _compiled_by_saver[checkpointer] = builder.compile(checkpointer=checkpointer, name=graph.name)
    return _compiled_by_saver[checkpointer]


async def run_storyboard(
    request: StoryboardRequest,
    context: Context,
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    resume: bool = False,
    on_event: EventHandler | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunSummary:
    """Run (or, with ``resume`` and a checkpointer, continue) one storyboard.

    The generation id is the checkpoint thread id, so a resumed run continues after the last
    scene it finished. Node failures do not raise: the summary comes back with status
    "failed" and the error, and everything finished before stays on disk.
    """
    if resume and checkpointer is None:
        raise ValueError("`resume` needs a `checkpointer` that holds the run's earlier steps")
    context = dataclasses.replace(context, should_stop=should_stop)
    compiled = _compiled(checkpointer)
    config: RunnableConfig = {"configurable": {"thread_id": request.generation_id}, "recursion_limit": 1000}
    payload: InputState | None = InputState(**{name: getattr(request, name) for name in type(request).model_fields})
    if resume:
        snapshot = await compiled.aget_state(config)
        if snapshot.values:
            payload = None
    try:
        # durability="sync": a step's checkpoint is written before the next step starts, so a
        # process killed right after a scene never generates that scene again on resume.
        # durability=None is LangGraph's default ("async"). With subgraphs and several modes,
        # astream is an async generator of (namespace, mode, chunk); its stubs say an iterator of dicts.
        stream = cast(
            AsyncGenerator[tuple[tuple[str, ...], str, Any], None],
            compiled.astream(
                payload,
                config,
                context=context,
                stream_mode=["custom", "updates"],
                subgraphs=True,
                durability="sync" if checkpointer is not None else None,
            ),
        )
        async with aclosing(stream):
            async for _namespace, mode, chunk in stream:
                if mode == "custom" and on_event is not None:
                    result = on_event(chunk)
                    if inspect.isawaitable(result):
                        await result
    except RunCancelled:
        return await asyncio.to_thread(_finalize, context, request, "cancelled", None)
    except Exception as exc:  # the run failed: record it, keep what was finished
        logger.exception("generation %s failed", request.generation_id)
        return await asyncio.to_thread(_finalize, context, request, "failed", f"{type(exc).__name__}: {exc}")
    return await asyncio.to_thread(read_summary, context.trace_root, request.generation_id)
