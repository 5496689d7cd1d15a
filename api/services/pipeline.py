"""The bridge from a stored job to the graph: the one place the service calls ``run_storyboard``.

The job runner calls a ``Pipeline``; the default one builds the run context from the stored
request and the deployment settings (secrets are read here, at the boundary) and runs the
storyboard graph. Tests inject their own ``Pipeline`` the way httpx tests inject a transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from imageforge.agents.schemas import StoryboardPlan
from imageforge.api.settings import Settings
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.tools.schemas import GenerationOutput, ImageSize, ReferenceImage
from imageforge.traces.schemas import RunSummary

__all__ = ["DelayedGenerator", "JobSpec", "Pipeline", "make_pipeline"]

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class JobSpec(BaseModel):
    """A generation's stored request: everything needed to start (or resume) its run."""

    model_config = ConfigDict(extra="ignore")

    concept: str
    target_duration_s: float | None = None
    num_scenes: int | None = None
    scenes: list[str] | None = None
    reference_path: str | None = None
    settings: GenerationSettings
    backends: BackendSettings
    preset: str | None = None
    characters: list[str] = Field(default_factory=list, description="Character ids shown in every scene.")
    scene_characters: list[list[str]] | None = Field(None, description="Character ids per explicit scene.")
    character_references: dict[str, list[ReferenceImage]] = Field(
        default_factory=dict, description="Character id -> its references, resolved when the request was accepted."
    )
    plan: StoryboardPlan | None = Field(
        None, description="An explicit plan (the assistant's refine); skips the planner."
    )
    reuse_from: str | None = Field(None, description="Generation whose first `keep_scenes` scenes are kept.")
    keep_scenes: int = Field(0, ge=0, description="How many leading scenes of `reuse_from` to keep.")


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


@dataclass
class DelayedGenerator:
    """Wraps a generator with a sleep before each call (``IMAGEFORGE_TEST_GENERATOR_DELAY_S``).

    It exists for the restart test, which must kill the server while a scene is being
    generated; it changes nothing but timing.
    """

    inner: Any
    delay_s: float

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def model(self) -> str:
        return str(self.inner.model)

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput:
        time.sleep(self.delay_s)
        return self.inner.generate(
            prompt, negative_prompt=negative_prompt, seeds=seeds, references=references, size=size
        )


def make_pipeline(settings: Settings) -> Pipeline:
    """The real pipeline: ``graph.run.run_storyboard`` with services built from settings.

    Called from the app's lifespan, so the graph is imported (and compiled) at start-up
    rather than by the first job, in the middle of serving requests.
    """
    from imageforge.graph.run import StoryboardRequest, run_storyboard

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    delayed: dict[BackendSettings, Any] = {}

    def services(backends: BackendSettings) -> Any:
        from imageforge.graph.services import build_services

        built = build_services(backends, api_key=api_key)
        if settings.test_generator_delay_s <= 0:
            return built
        if backends not in delayed:
            delayed[backends] = replace(
                built, generator=DelayedGenerator(built.generator, settings.test_generator_delay_s)
            )
        return delayed[backends]

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
        # Building loads models on first use: keep it off the event loop.
        built = await asyncio.to_thread(services, spec.backends)
        context = Context(
            settings=spec.settings, backends=spec.backends, trace_root=str(settings.trace_root), services=built
        )
        return await run_storyboard(
            request, context, checkpointer=checkpointer, resume=resume, on_event=on_event, should_stop=should_stop
        )

    return run
