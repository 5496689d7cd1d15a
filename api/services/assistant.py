"""The assistant panel on the service side: the tools' implementations over the jobs API and
the assistant graph bound to the durable checkpointer (the conversations' ownership records
are ``api.crud.conversation``'s).

``ServiceTools`` is what the assistant graph's tools call (``graph.assistant.AssistantService``):
one instance per request, bound to the caller, so every tool acts for that user only (another
user's generation is "not found", exactly as on the REST routes). Each method answers with a
``ToolOutcome``; what cannot be done (a full queue, a scene that has not finished, a value
out of range) is a refused outcome whose reply says why, never an exception.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

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
from imageforge.agents.schemas import ConsistencyMarkers, ScenePlan, StoryboardPlan
from imageforge.api.core.checkpoints import open_checkpointer
from imageforge.api.core.config import Settings
from imageforge.api.crud import generation as crud
from imageforge.api.models.conversation import AssistantAction, ConversationMessage
from imageforge.api.models.generation import (
    TERMINAL_STATUSES,
    Generation,
    GenerationCreate,
    GenerationOptions,
    GenerationStatusDocument,
    JobSpec,
)
from imageforge.api.services.job_queue import JobQueue, QueueFullError
from imageforge.api.services.status import apply_live, build_status_document, generation_links, recorded_scenes
from imageforge.api.services.submission import UserJobsFullError, submit
from imageforge.graph.assistant import AssistantContext, AssistantInput, AssistantState, compile_assistant
from imageforge.graph.context import GenerationSettings
from imageforge.graph.settings_change import describe_settings
from imageforge.scoring.ensemble import deciding_component
from imageforge.traces.reader import CorruptTraceError, TraceNotFoundError, read_trace
from imageforge.traces.schemas import RunSummary, SceneResult

__all__ = [
    "AssistantHub",
    "ServiceTools",
    "conversation_messages",
    "explain_scene",
    "open_assistant",
    "source_plan",
    "status_reply",
]

START_EXAMPLE = '"make a 15 second storyboard about artisan coffee"'


# The graph and its checkpointer -------------------------------------------------------------
@dataclass
class AssistantHub:
    """The assistant graph compiled with the durable checkpointer (``app.state.assistant``).

    One turn at a time per conversation: two messages racing on one thread would both start
    from the same checkpoint and one would lose the other's changes.
    """

    graph: CompiledStateGraph[AssistantState, AssistantContext, AssistantInput, AssistantState]
    checkpointer: BaseCheckpointSaver
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)

    def lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock


@asynccontextmanager
async def open_assistant(settings: Settings) -> AsyncIterator[AssistantHub]:
    """Open the assistant's checkpointer (the service's SQLite or PostgreSQL one) on the calling
    event loop, which serves the requests; the job runner keeps its own on its worker loop."""
    async with open_checkpointer(settings) as saver:
        yield AssistantHub(graph=compile_assistant(saver), checkpointer=saver)


# Conversations as the API shows them --------------------------------------------------
def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def conversation_messages(messages: Sequence[BaseMessage]) -> list[ConversationMessage]:
    """A conversation's checkpointed messages as the API shows them."""
    shown: list[ConversationMessage] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            shown.append(ConversationMessage(role="user", content=_text(message)))
        elif isinstance(message, AIMessage):
            calls = [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in message.tool_calls]
            shown.append(ConversationMessage(role="assistant", content=_text(message), tool_calls=calls))
        elif isinstance(message, ToolMessage):
            action = AssistantAction(**message.artifact) if isinstance(message.artifact, dict) else None
            shown.append(ConversationMessage(role="tool", content=_text(message), name=message.name, action=action))
    return shown


# Pure helpers: plans, explanations, status ----------------------------------------------------
def source_plan(generation: Generation, summary: RunSummary | None) -> StoryboardPlan | None:
    """The plan a storyboard ran with: from its trace, else from what the job runner stored."""
    if summary is not None and summary.plan is not None:
        return summary.plan
    stored = generation.plan or {}
    scenes = stored.get("scenes") or []
    if not scenes:
        return None
    markers = stored.get("markers")
    request = generation.request or {}
    return StoryboardPlan(
        concept=generation.concept,
        target_duration_s=request.get("target_duration_s"),
        scenes=[ScenePlan.model_validate(scene) for scene in scenes],
        markers=ConsistencyMarkers.model_validate(markers) if markers else ConsistencyMarkers(),
        source=stored.get("source") or "heuristic",
    )


def _weighted(components: dict[str, float], weights: dict[str, float]) -> str:
    return ", ".join(f"{slot} {components[slot]:.1f} x {weights[slot]:.2f}" for slot in weights if slot in components)


def explain_scene(result: SceneResult, image: int | None = None) -> tuple[str, dict[str, Any]]:
    """Why a scene's winner won (or why ``image`` did not): overall, runner-up margin and the
    deciding component, from the scene's recorded scores. Returns (text, details)."""
    k = result.scene_number
    if result.winner is None or result.winner_attempt is None:
        reason = result.attempts[-1].reason if result.attempts else "no attempt ran"
        return f"Scene {k} has no winner: it failed in strict mode ({reason}).", {
            "scene": k,
            "image": None,
        }
    attempt = next(a for a in result.attempts if a.attempt == result.winner_attempt)
    weights = result.ensemble.effective_weights
    winner = result.winner
    ranked = sorted(attempt.variations, key=lambda v: (v.rank or 10**6, -v.overall))
    details: dict[str, Any] = {
        "scene": k,
        "image": winner.index,
        "attempt": attempt.attempt,
        "overall": round(winner.overall, 1),
        "components": dict(winner.components),
        "weights": dict(weights),
    }
    if image is not None and image != winner.index:
        asked = next((v for v in attempt.variations if v.index == image), None)
        details["asked_image"] = image
        if asked is None:
            count = len(attempt.variations)
            text = f"Scene {k} has images 1 to {count} (attempt {attempt.attempt}); image {winner.index} won it."
            return text, details
        slot = deciding_component(winner.components, asked.components, weights)
        lead = weights[slot] * (winner.components.get(slot, 0.0) - asked.components.get(slot, 0.0))
        text = (
            f"Image {image} did not win scene {k}: image {winner.index} did, with {winner.overall:.1f} against "
            f"{asked.overall:.1f} (image {image} ranked {asked.rank} of {len(attempt.variations)}). The biggest "
            f"difference was {slot} ({winner.components.get(slot, 0.0):.1f} vs {asked.components.get(slot, 0.0):.1f}, "
            f"worth {lead:+.1f} weighted points)."
        )
        details.update(margin=round(winner.overall - asked.overall, 1), deciding_component=slot)
        return text, details
    parts = [
        f"Image {winner.index} won scene {k} with an overall score of {winner.overall:.1f}/100 "
        f"({_weighted(winner.components, weights)})."
    ]
    runner = next((v for v in ranked if v.index != winner.index), None)
    if runner is not None:
        slot = deciding_component(winner.components, runner.components, weights)
        lead = weights[slot] * (winner.components.get(slot, 0.0) - runner.components.get(slot, 0.0))
        margin = winner.overall - runner.overall
        parts.append(
            f"The runner-up, image {runner.index}, scored {runner.overall:.1f}: a margin of {margin:.1f} points; "
            f"the deciding component was {slot} ({winner.components.get(slot, 0.0):.1f} vs "
            f"{runner.components.get(slot, 0.0):.1f}, worth {lead:+.1f} weighted points)."
        )
        details.update(runner_up=runner.index, margin=round(margin, 1), deciding_component=slot)
    else:
        parts.append("It was the only variation, so it won unopposed.")
    if winner.consistency is not None:
        parts.append(f"Its consistency with the reference is {winner.consistency:.1f}/100.")
    if len(result.attempts) > 1:
        parts.append(f"It came from attempt {attempt.attempt} of {len(result.attempts)}.")
    if result.status == "accepted_with_warning":
        parts.append(f"No attempt passed validation, so lenient mode kept the best one ({attempt.reason}).")
    elif attempt.reason:
        parts.append(f"{attempt.reason.rstrip('.')}.")
    return " ".join(parts), details


def status_reply(document: GenerationStatusDocument) -> str:
    """The status document in a few words."""
    plan = document.storyboard_plan
    concept = plan.concept if len(plan.concept) <= 60 else plan.concept[:57] + "..."
    head = f'Storyboard {document.generation_id} ("{concept}") is {document.status}'
    finished = [s for s in plan.scenes if s.status in ("passed", "accepted_with_warning", "failed")]
    total = len(plan.scenes)
    if document.status == "running":
        head += f": {document.progress}% done, {document.current_step}"
    elif document.status == "queued":
        head += ", waiting for a worker"
    elif document.status == "completed" and document.elapsed_s is not None:
        head += f" after {document.elapsed_s:.0f} s"
    elif document.status == "failed" and document.error:
        head += f": {document.error}"
    parts = [head + "."]
    if total:
        scores = ", ".join(
            f"scene {s.scene_number} {s.quality_score:.1f}"
            + ("" if s.status == "passed" else f" ({s.status.replace('_', ' ')})")
            for s in finished
            if s.quality_score is not None
        )
        parts.append(f"{len(finished)} of {total} scenes finished" + (f" (quality: {scores})." if scores else "."))
    if document.warnings:
        parts.append(f"{len(document.warnings)} warning(s); the trace has the details.")
    return " ".join(parts)


def _trace_gone(generation_id: str, what: str) -> str:
    return (
        f"The trace of storyboard {generation_id} is no longer on disk (the server's trace retention removed it), "
        f"so I can't {what}; the status document still has its scores."
    )


def _problems(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


# The tools --------------------------------------------------------------------------------
@dataclass
class ServiceTools:
    """``AssistantService`` over the jobs API, acting for one user."""

    engine: Engine
    runner: JobQueue
    settings: Settings
    user_id: int
    base_url: str

    def _owned(self, generation_id: str) -> Generation | None:
        with Session(self.engine) as session:
            return crud.get_generation(session=session, generation_id=generation_id, user_id=self.user_id)

    def _trace(self, generation_id: str) -> RunSummary | None:
        try:
            return read_trace(self.settings.trace_root, generation_id).summary
        except (TraceNotFoundError, CorruptTraceError, ValueError):
            return None

    async def _submit(
        self, create: GenerationCreate, spec_fields: dict[str, Any] | None = None
    ) -> tuple[str, str] | str:
        """(generation id, status URL), or the reason it was refused."""
        try:
            accepted = await submit(
                runner=self.runner,
                engine=self.engine,
                settings=self.settings,
                user_id=self.user_id,
                create=create,
                base_url=self.base_url,
                spec_fields=spec_fields,
            )
        except UserJobsFullError as exc:
            return (
                f"You already have {exc.active} generations queued or running, the most one user may have; "
                f"try again when one finishes (or in {exc.retry_after_s} s)."
            )
        except QueueFullError as exc:
            return f"The job queue is full right now; try again in {exc.retry_after_s} s."
        except (ValidationError, RequestValidationError) as exc:
            return f"The service refused it ({_problems(exc)})."
        return accepted.generation_id, accepted.status_url

    async def start_storyboard(self, args: StartStoryboardArgs, settings: GenerationSettings) -> ToolOutcome:
        try:
            create = GenerationCreate(
                prompt=args.description,
                target_duration=args.target_duration_s,
                num_scenes=args.num_scenes,
                settings=GenerationOptions(**settings.model_dump()),
            )
        except ValidationError as exc:
            return ToolOutcome(reply=f"I can't start that storyboard: {_problems(exc)}.", refused=True)
        submitted = await self._submit(create)
        if isinstance(submitted, str):
            return ToolOutcome(reply=f"I can't start the storyboard now. {submitted}", refused=True)
        generation_id, status_url = submitted
        length = (
            f"{create.num_scenes} scenes"
            if create.num_scenes
            else f"{create.target_duration:g} s"
            if create.target_duration
            else "the planner's length"
        )
        reply = (
            f'Started storyboard {generation_id} about "{create.prompt}" ({length}; {describe_settings(settings)}). '
            'Ask "how is it going?" for progress.'
        )
        action = storyboard_started(
            generation_id,
            concept=create.prompt,
            target_duration_s=create.target_duration,
            num_scenes=create.num_scenes,
            settings=settings.model_dump(mode="json"),
            status_url=status_url,
        )
        return ToolOutcome(reply=reply, action=action, generation_id=generation_id)

    async def refine_scene(
        self, generation_id: str | None, args: RefineSceneArgs, overrides: dict[str, Any]
    ) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(
                reply=f"There is no storyboard to refine yet; start one first, e.g. {START_EXAMPLE}.",
                refused=True,
            )
        source = await asyncio.to_thread(self._owned, generation_id)
        if source is None:
            return ToolOutcome(reply=f"I can't find storyboard {generation_id}.", refused=True)
        summary = await asyncio.to_thread(self._trace, generation_id)
        plan = source_plan(source, summary)
        if plan is None:
            return ToolOutcome(
                reply=(
                    f"Storyboard {generation_id} has no plan yet (it is {source.status}); "
                    "ask again once it has started."
                ),
                refused=True,
            )
        k, total = args.scene, len(plan.scenes)
        if not 1 <= k <= total:
            return ToolOutcome(
                reply=f"Storyboard {generation_id} has scenes 1 to {total}; which one should I refine?",
                refused=True,
            )
        finished = {s.scene_number for s in (summary.scenes if summary else []) if s.winner is not None}
        missing = [j for j in range(1, k) if j not in finished]
        if missing and summary is None and source.status in TERMINAL_STATUSES:
            return ToolOutcome(reply=_trace_gone(generation_id, "refine it"), refused=True)
        if missing:
            done = len(finished)
            if source.status in ("failed", "cancelled"):
                why = f"it {source.status} before finishing scene {missing[0]}"
            else:
                why = f"it is {source.status} with {done} of {total} scenes finished"
            return ToolOutcome(
                reply=(
                    f"I can't refine scene {k} of storyboard {generation_id} yet: "
                    "the scenes before it are kept as they "
                    f"are, and scene {missing[0]} has not finished ({why}). Ask again once scene {k - 1} is done."
                ),
                refused=True,
            )
        spec = JobSpec.model_validate(source.request)
        refined = plan.model_copy(deep=True)
        prompt = amend_prompt(refined.scenes[k - 1].prompt, args.instruction)
        refined.scenes[k - 1].prompt = prompt
        try:
            settings = GenerationSettings(**{**spec.settings.model_dump(), **overrides})
            create = GenerationCreate(
                prompt=source.concept,
                target_duration=spec.target_duration_s,
                settings=GenerationOptions(**settings.model_dump()),
            )
        except ValidationError as exc:
            return ToolOutcome(reply=f"I can't refine scene {k}: {_problems(exc)}.", refused=True)
        spec_fields = {
            "plan": refined,
            "reuse_from": generation_id,
            "keep_scenes": k - 1,
            "backends": spec.backends,
            "reference_path": spec.reference_path,
            "characters": spec.characters,
            "character_references": spec.character_references,
        }
        submitted = await self._submit(create, spec_fields)
        if isinstance(submitted, str):
            return ToolOutcome(reply=f"I can't refine scene {k} now. {submitted}", refused=True)
        new_id, status_url = submitted
        kept = "no scenes" if k == 1 else ("scene 1" if k == 2 else f"scenes 1-{k - 1}")
        redone = f"scene {k}" if k == total else f"scenes {k}-{total}"
        reply = (
            f"Refining scene {k} of {generation_id} as new storyboard {new_id}: it keeps {kept} and re-enhances and "
            f'regenerates {redone}, with scene {k}\'s prompt now "{prompt}". It is the current storyboard.'
        )
        action = scene_refined(
            new_id,
            reuse_from=generation_id,
            scene=k,
            instruction=args.instruction,
            prompt=prompt,
            status_url=status_url,
        )
        return ToolOutcome(reply=reply, action=action, generation_id=new_id)

    async def explain_winner(self, generation_id: str | None, args: ExplainWinnerArgs) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(
                reply=f"There is no storyboard to explain yet; start one first, e.g. {START_EXAMPLE}.",
                refused=True,
            )
        source = await asyncio.to_thread(self._owned, generation_id)
        if source is None:
            return ToolOutcome(reply=f"I can't find storyboard {generation_id}.", refused=True)
        summary = await asyncio.to_thread(self._trace, generation_id)
        scenes = {s.scene_number: s for s in (summary.scenes if summary else [])}
        if summary is None and source.status in TERMINAL_STATUSES:
            return ToolOutcome(reply=_trace_gone(generation_id, "explain it"), refused=True)
        if not scenes:
            return ToolOutcome(
                reply=(
                    f"No scene of storyboard {generation_id} has finished yet (it is {source.status}), "
                    "so there is no winner to explain."
                ),
                refused=True,
            )
        if args.scene is not None:
            if args.scene not in scenes:
                listed = ", ".join(str(k) for k in sorted(scenes))
                return ToolOutcome(
                    reply=f"Scene {args.scene} of storyboard {generation_id} has not finished (finished: {listed}).",
                    refused=True,
                )
            chosen = [scenes[args.scene]]
        elif args.image is not None:
            chosen = [
                next(
                    (s for s in scenes.values() if s.winner and s.winner.index == args.image),
                    scenes[min(scenes)],
                )
            ]
        else:
            chosen = [scenes[k] for k in sorted(scenes)]
        texts, details = [], []
        for result in chosen:
            text, detail = explain_scene(result, args.image)
            texts.append(text)
            details.append(detail)
        action = {"type": "winner_explained", "generation_id": generation_id, "scenes": details}
        return ToolOutcome(reply="\n".join(texts), action=action)

    def _document(self, generation_id: str) -> GenerationStatusDocument | None:
        with Session(self.engine) as session:
            generation = crud.get_generation(session=session, generation_id=generation_id, user_id=self.user_id)
            if generation is None:
                return None
            rows = crud.load_scenes(session=session, generation_id=generation_id)
            scenes = recorded_scenes(generation_id, rows, base_url=self.base_url)
            document = build_status_document(generation, scenes, base_url=self.base_url)
        return apply_live(document, self.runner.live(generation_id))

    async def report_status(self, generation_id: str | None) -> ToolOutcome:
        if generation_id is None:
            return ToolOutcome(
                reply=f"There is no storyboard in this conversation yet. Start one with, e.g., {START_EXAMPLE}."
            )
        document = await asyncio.to_thread(self._document, generation_id)
        if document is None:
            return ToolOutcome(reply=f"I can't find storyboard {generation_id}.", refused=True)
        scenes = document.storyboard_plan.scenes
        action = status_reported(
            generation_id,
            status=document.status,
            scenes_finished=sum(1 for s in scenes if s.status in ("passed", "accepted_with_warning", "failed")),
            scenes_total=len(scenes),
            progress=document.progress,
            current_step=document.current_step,
            status_url=generation_links(self.base_url, generation_id)["status"],
        )
        return ToolOutcome(reply=status_reply(document), action=action)
