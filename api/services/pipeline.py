"""The bridge from a stored job to the graph: the one place the job runner calls ``run_storyboard``.

The job runner calls a ``Pipeline``; the default one turns the stored ``JobSpec`` into the
graph's request and run context (the backends come from ``api.services.backends``), runs
the storyboard graph, then the steps of the job's kind (``JobSpec.kind``: a smart image
writes its analysis and adds its winner to the gallery). Everything a kind needs is in the
stored spec, so the embedded runner and a distributed worker run any job alike. Tests
inject their own ``Pipeline`` the way httpx tests inject a transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import Engine

from imageforge.api.core.config import Settings
from imageforge.api.models.generation import JobSpec
from imageforge.api.services.backends import DefaultBackends
from imageforge.graph.context import Context
from imageforge.traces.schemas import RunSummary

__all__ = ["EventHandler", "Pipeline", "make_pipeline"]

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Pipeline(Protocol):
    async def __call__(
        self,
        generation_id: str,
        spec: JobSpec,
        *,
        checkpointer: BaseCheckpointSaver | None,
        resume: bool,
        on_event: EventHandler,
        should_stop: Callable[[], bool],
    ) -> RunSummary: ...


def make_pipeline(settings: Settings, backends: DefaultBackends, *, engine: Engine) -> Pipeline:
    """The real pipeline: ``graph.run.run_storyboard`` with the backends each job stored,
    then the steps of the job's kind (a smart image's gallery image, written with ``engine``).

    Called from the app's lifespan, so the graph is imported (and compiled) at start-up
    rather than by the first job, in the middle of serving requests.
    """
    from imageforge.api.services.smart_images import finish_smart_image
    from imageforge.graph.run import StoryboardRequest, run_storyboard

    async def run(
        generation_id: str,
        spec: JobSpec,
        *,
        checkpointer: BaseCheckpointSaver | None,
        resume: bool,
        on_event: EventHandler,
        should_stop: Callable[[], bool],
    ) -> RunSummary:
        request = StoryboardRequest(
            generation_id=generation_id,
            concept=spec.concept,
            target_duration_s=spec.target_duration_s,
            num_scenes=spec.num_scenes,
            scenes=spec.scenes,
            reference_path=spec.reference_path,
            plan=spec.plan,
            reuse_from=spec.reuse_from,
            keep_scenes=spec.keep_scenes,
            character_references=spec.character_references,
            characters=spec.characters,
            scene_characters=spec.scene_characters,
        )
        # Building loads models on first use: keep it off the event loop. A smart image runs on
        # the deployment's default set, warm since start-up (and failing as it failed then).
        build = backends.get if spec.kind == "smart_image" else partial(backends.for_run, spec.backends)
        services = await asyncio.to_thread(build)
        context = Context(
            settings=spec.settings, backends=spec.backends, trace_root=str(settings.trace_root), services=services
        )
        summary = await run_storyboard(
            request, context, checkpointer=checkpointer, resume=resume, on_event=on_event, should_stop=should_stop
        )
        if spec.kind == "smart_image":
            summary = await finish_smart_image(generation_id, spec, summary, engine=engine, settings=settings)
        return summary

    return run
