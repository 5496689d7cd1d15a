"""The assistant's tools without a service: storyboards run in this process.

Under LangGraph's own server (``langgraph dev``, LangGraph Studio) or in a notebook no
ImageForge service is attached to the assistant graph, so its tools act on this embedded
runner instead: it implements ``graph.assistant.AssistantService`` by running each storyboard
as a task on the calling event loop (``graph.run.run_storyboard``) and answering status,
explanations and refinements from the trace folder. It has no users, no queue and no
database: the service (``api.services.assistant.ServiceTools``) is what adds those.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from imageforge.agents.assistant import (
    ExplainWinnerArgs,
    RefineSceneArgs,
    StartStoryboardArgs,
    ToolOutcome,
    amend_prompt,
    scene_refined,
    status_reported,
    storyboard_started,
)
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.scoring.ensemble import deciding_component
from imageforge.traces.reader import TraceNotFoundError, read_summary
from imageforge.traces.schemas import RunSummary, SceneResult

START_EXAMPLE = '"make a 15 second storyboard about artisan coffee"'


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())


def _explain(result: SceneResult, image: int | None) -> str:
    """The recorded reason the winner won, or why ``image`` lost to it."""
    k = result.scene_number
    if result.winner is None or result.winner_attempt is None:
        return f"Scene {k} has no winner: it failed in strict mode."
    winner = result.winner
    if image is None or image == winner.index:
        return f"Scene {k}: {result.reason}"
    attempt = next(a for a in result.attempts if a.attempt == result.winner_attempt)
    asked = next((v for v in attempt.variations if v.index == image), None)
    if asked is None:
        return f"Scene {k} has images 1 to {len(attempt.variations)}; image {winner.index} won it."
    slot = deciding_component(winner.components, asked.components, result.ensemble.effective_weights)
    return (
        f"Image {image} did not win scene {k}: image {winner.index} did, with {winner.overall:.1f} against "
        f"{asked.overall:.1f}; the biggest difference was {slot} ({winner.components.get(slot, 0.0):.1f} vs "
        f"{asked.components.get(slot, 0.0):.1f})."
    )


@dataclass
class EmbeddedRunner:
    """``AssistantService`` over storyboards run in this process, traces under ``trace_root``."""

    trace_root: str
    backends: BackendSettings = field(default_factory=BackendSettings)
    tasks: dict[str, asyncio.Task[RunSummary]] = field(default_factory=dict)

    def _launch(self, request: StoryboardRequest, settings: GenerationSettings) -> None:
        context = Context(settings=settings, backends=self.backends, trace_root=self.trace_root)
        name = f"storyboard {request.generation_id}"
        self.tasks[request.generation_id] = asyncio.create_task(run_storyboard(request, context), name=name)

    async def _summary(self, generation_id: str) -> RunSummary | None:
        try:
            return await asyncio.to_thread(read_summary, self.trace_root, generation_id)
        except (TraceNotFoundError, ValueError):
            return None

    async def wait(self, generation_id: str) -> RunSummary:
        """The finished run's summary (tests and notebooks wait on a started storyboard)."""
        return await self.tasks[generation_id]

    async def start_storyboard(self, args: StartStoryboardArgs, settings: GenerationSettings) -> ToolOutcome:
        generation_id = f"gen-{uuid.uuid4().hex[:12]}"
        try:
            request = StoryboardRequest(
                generation_id=generation_id,
                concept=args.description,
                target_duration_s=args.target_duration_s,
                num_scenes=args.num_scenes,
            )
        except ValidationError as exc:
            return ToolOutcome(reply=f"I can't start that storyboard: {_problems(exc)}.", refused=True)
        self._launch(request, settings)
        action = storyboard_started(
            generation_id,
            concept=args.description,
            target_duration_s=args.target_duration_s,
            num_scenes=args.num_scenes,
            settings=settings.model_dump(mode="json"),
        )
        reply = f'Started storyboard {generation_id} about "{args.description}". Ask "how is it going?" for progress.'
        return ToolOutcome(reply=reply, action=action, generation_id=generation_id)

    async def report_status(self, generation_id: str | None) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(
                reply=f"There is no storyboard in this conversation yet. Start one with {START_EXAMPLE}."
            )
        summary = await self._summary(generation_id)
        task = self.tasks.get(generation_id)
        if summary is None:
            if task is not None and not task.done():
                return ToolOutcome(reply=f"Storyboard {generation_id} is starting.")
            return ToolOutcome(reply=f"I can't find storyboard {generation_id}.", refused=True)
        total = len(summary.plan.scenes) if summary.plan else 0
        finished = len(summary.scenes)
        scores = ", ".join(f"scene {s.scene_number} {s.winner.overall:.1f}" for s in summary.scenes if s.winner)
        reply = f"Storyboard {generation_id} is {summary.status}: {finished} of {total} scenes finished"
        reply += f" (quality: {scores})." if scores else "."
        if summary.error:
            reply += f" Error: {summary.error}"
        action = status_reported(generation_id, status=summary.status, scenes_finished=finished, scenes_total=total)
        return ToolOutcome(reply=reply, action=action)

    async def explain_winner(self, generation_id: str | None, args: ExplainWinnerArgs) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(reply=f"There is no storyboard to explain yet; start one with {START_EXAMPLE}.")
        summary = await self._summary(generation_id)
        scenes = {s.scene_number: s for s in (summary.scenes if summary else [])}
        if not scenes:
            return ToolOutcome(reply=f"No scene of storyboard {generation_id} has finished yet.", refused=True)
        if args.scene is not None and args.scene not in scenes:
            return ToolOutcome(
                reply=f"Scene {args.scene} of storyboard {generation_id} has not finished.", refused=True
            )
        chosen = [scenes[args.scene]] if args.scene is not None else [scenes[k] for k in sorted(scenes)]
        action = {
            "type": "winner_explained",
            "generation_id": generation_id,
            "scenes": [r.scene_number for r in chosen],
        }
        return ToolOutcome(reply="\n".join(_explain(r, args.image) for r in chosen), action=action)

    async def refine_scene(
        self, generation_id: str | None, args: RefineSceneArgs, overrides: dict[str, Any]
    ) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(
                reply=f"There is no storyboard to refine yet; start one with {START_EXAMPLE}.", refused=True
            )
        summary = await self._summary(generation_id)
        if summary is None or summary.plan is None:
            return ToolOutcome(reply=f"Storyboard {generation_id} has no plan yet; ask again shortly.", refused=True)
        k, total = args.scene, len(summary.plan.scenes)
        if not 1 <= k <= total:
            return ToolOutcome(reply=f"Storyboard {generation_id} has scenes 1 to {total}.", refused=True)
        finished = {s.scene_number for s in summary.scenes if s.winner is not None}
        missing = [j for j in range(1, k) if j not in finished]
        if missing:
            return ToolOutcome(
                reply=f"I can't refine scene {k} yet: scene {missing[0]} (kept as it is) has not finished.",
                refused=True,
            )
        plan = summary.plan.model_copy(deep=True)
        prompt = amend_prompt(plan.scenes[k - 1].prompt, args.instruction)
        plan.scenes[k - 1].prompt = prompt
        known = {name: value for name, value in summary.settings.items() if name in GenerationSettings.model_fields}
        new_id = f"gen-{uuid.uuid4().hex[:12]}"
        try:
            settings = GenerationSettings(**{**known, **overrides})
            request = StoryboardRequest(
                generation_id=new_id,
                concept=summary.concept,
                plan=plan,
                reuse_from=generation_id if k > 1 else None,
                keep_scenes=k - 1,
            )
        except ValidationError as exc:
            return ToolOutcome(reply=f"I can't refine scene {k}: {_problems(exc)}.", refused=True)
        self._launch(request, settings)
        action = scene_refined(new_id, reuse_from=generation_id, scene=k, instruction=args.instruction, prompt=prompt)
        reply = f'Refining scene {k} of {generation_id} as new storyboard {new_id}, with the prompt "{prompt}".'
        return ToolOutcome(reply=reply, action=action, generation_id=new_id)


_runners: dict[tuple[str, BackendSettings], EmbeddedRunner] = {}


def embedded_runner(trace_root: str, backends: BackendSettings) -> EmbeddedRunner:
    """One runner per trace root and backends in this process, so a conversation's later turns
    find the storyboards its earlier turns started."""
    key = (trace_root, backends)
    if key not in _runners:
        _runners[key] = EmbeddedRunner(trace_root=trace_root, backends=backends)
    return _runners[key]
