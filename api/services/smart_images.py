"""Seed 003's smart image: a character image made by the same run as every storyboard.

The request becomes a one-scene storyboard with an explicit plan (the prompt as its scene; the
character's name and description, and the style, as its consistency markers) whose scene
shows the character, so ``graph.run.run_storyboard`` enhances the prompt, ranks the
character's references, follows the attempt strategy, generates, scores, validates, retries
and selects in strict mode, and writes an ordinary trace. After the run, the prompt analysis,
the ranking and the attempt schedule the scene followed are written beside it as
``smart_image.json``. The run is stored as a finished generation (the trace pages and the
status document show it like any storyboard) and an image that passed is copied into the
character's gallery, so deleting the trace never breaks the gallery.

Everything that cannot be done is a ``SmartImageFailure``: the app answers it in seed 003's
error shape (``api.main``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.agents.schemas import ConsistencyMarkers, ScenePlan, StoryboardPlan
from imageforge.api.core.config import Settings
from imageforge.api.crud import character as character_crud
from imageforge.api.crud import generation as generation_crud
from imageforge.api.models.character import (
    Character,
    GalleryImage,
    SmartImageData,
    SmartImageErrorDetails,
    SmartImageRequest,
    SmartImageSuccess,
)
from imageforge.api.services import characters
from imageforge.api.services.backends import DefaultBackends
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.services import Services
from imageforge.tools.references import (
    ReferenceFeatures,
    attempt_references,
    extract_keywords,
    rank_references,
    reference_features,
)
from imageforge.tools.schemas import ReferenceImage
from imageforge.traces import layout
from imageforge.traces.schemas import Attempt, RunSummary, SceneResult
from imageforge.traces.writer import write_json

__all__ = [
    "REFERENCE_TYPE",
    "SMART_ENHANCEMENT_ITERATIONS",
    "SMART_IMAGE_FILE",
    "SMART_RESOLUTION",
    "STYLE_MARKERS",
    "SmartImageFailure",
    "SmartImageOutcome",
    "SmartImageRunError",
    "generate_smart_image",
    "record_smart_image",
    "run_smart_image",
    "smart_generation_id",
    "smart_plan",
    "smart_request_record",
    "smart_settings",
    "validation_notes",
]

logger = logging.getLogger(__name__)

#: Critique-loop rounds for the smart image's prompt; the heuristic agents approve early anyway.
SMART_ENHANCEMENT_ITERATIONS = 2
#: Long edge of a smart image.
SMART_RESOLUTION = 512
#: What each seed-003 style adds to the consistency markers' style.
STYLE_MARKERS: dict[str, str] = {
    "character_turnaround": "character turnaround reference sheet, clean neutral studio backdrop, even light",
    "character_production": "character production still, consistent character design",
    "custom": "",
}
#: tools.schemas reference kinds as seed 003's selectedReferenceType.
REFERENCE_TYPE: dict[str, str] = {
    "master": "master",
    "core": "core_reference",
    "generated": "generated",
}
#: The trace file with the prompt analysis, the ranking and the attempt schedule.
SMART_IMAGE_FILE = "smart_image.json"


class SmartImageFailure(Exception):
    """A smart image that cannot be made, with seed 003's status code, error and details."""

    def __init__(self, status_code: int, error: str, details: SmartImageErrorDetails | None = None) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.error = error
        self.details = details or SmartImageErrorDetails()


class SmartImageRunError(RuntimeError):
    """The run ended without a scene result (a backend failed); the message is the run's error."""


def smart_generation_id(character_id: str) -> str:
    return f"char-{character_id}-{character_crud.new_id()}"


def smart_settings(
    *,
    max_retries: int,
    quality_threshold: float,
    consistency_threshold: float,
    num_variations: int,
    seed: int | None,
    resolution: int = SMART_RESOLUTION,
) -> GenerationSettings:
    """Seed 003's request as the graph's settings: ``maxRetries`` counts attempts, the graph
    counts retries after the first; strict, because a miss is an error response, not a warning."""
    return GenerationSettings(
        num_variations=num_variations,
        max_enhancement_iterations=SMART_ENHANCEMENT_ITERATIONS,
        quality_threshold=quality_threshold,
        consistency_threshold=consistency_threshold,
        max_retries=max_retries - 1,
        strict=True,
        seed=seed,
        resolution=resolution,
    )


def character_marker(name: str, description: str) -> str:
    return f"{name}: {description}" if description else name


def smart_plan(*, prompt: str, character_name: str, description: str, style: str) -> StoryboardPlan:
    """One scene, the prompt, with the character and the style as its consistency markers.

    The graph's planner does not run for an explicit plan, so ``source`` is what
    ``StoryboardPlan`` states for a plan no planner agent answered (its default), as for the
    graph's own plans from explicit scenes (``graph.builder``)."""
    markers = ConsistencyMarkers(characters=[character_marker(character_name, description)], style=STYLE_MARKERS[style])
    return StoryboardPlan(concept=prompt, scenes=[ScenePlan(scene_number=1, prompt=prompt)], markers=markers)


@dataclass(frozen=True)
class SmartImageOutcome:
    generation_id: str
    summary: RunSummary
    result: SceneResult
    features: ReferenceFeatures
    elapsed_ms: int

    @property
    def passed(self) -> bool:
        return self.result.status == "passed" and self.result.winner is not None

    @property
    def winner_attempt(self) -> Attempt | None:
        return next((a for a in self.result.attempts if a.attempt == self.result.winner_attempt), None)


async def run_smart_image(
    *,
    generation_id: str,
    character_id: str,
    character_name: str,
    description: str,
    prompt: str,
    style: str,
    candidates: list[ReferenceImage],
    settings: GenerationSettings,
    backends: BackendSettings,
    services: Services,
    trace_root: Path,
) -> SmartImageOutcome:
    """Run the one-scene storyboard, then write ``smart_image.json`` from its enhancement.

    Raises ``SmartImageRunError`` when the run ended without a scene result (a backend
    failed; the trace then says "failed").
    """
    from imageforge.graph.run import StoryboardRequest, run_storyboard

    # 1. Check inputs
    if not candidates:
        raise ValueError("`candidates` must hold at least one reference image.")
    if not settings.strict:
        raise ValueError("`settings.strict` must be True: a smart image that misses is an error.")

    # 2. The request: an explicit one-scene plan that shows the character
    request = StoryboardRequest(
        generation_id=generation_id,
        concept=prompt,
        plan=smart_plan(prompt=prompt, character_name=character_name, description=description, style=style),
        character_references={character_id: candidates},
        characters=[character_id],
    )
    context = Context(settings=settings, backends=backends, trace_root=str(trace_root), services=services)

    # 3. Run it as every storyboard runs
    clock = time.perf_counter()
    summary = await run_storyboard(request, context)
    if not summary.scenes or not summary.enhancements:
        raise SmartImageRunError(summary.error or f"generation {generation_id} ended {summary.status} without a scene")
    result = summary.scenes[0]

    # 4. What the scene followed: the analysis of the enhanced prompt, the ranking, the schedule
    features = reference_features(summary.enhancements[0].final.prompt)
    ranking = rank_references(candidates, features)
    await asyncio.to_thread(
        write_json,
        layout.generation_dir(trace_root, generation_id) / SMART_IMAGE_FILE,
        {
            "character": character_name,
            "prompt": prompt,
            "style": style,
            "prompt_analysis": reference_features(prompt).model_dump(),
            "enhanced_prompt_analysis": features.model_dump(),
            "ranking": [r.model_dump(mode="json") for r in ranking],
            "schedule": [None if r is None else r.id for r in attempt_references(ranking, settings.max_attempts)],
        },
    )
    return SmartImageOutcome(
        generation_id=generation_id,
        summary=summary,
        result=result,
        features=features,
        elapsed_ms=round((time.perf_counter() - clock) * 1000),
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "character"


def record_smart_image(
    *,
    session: Session,
    user_id: int,
    character_id: str,
    outcome: SmartImageOutcome,
    request: dict[str, Any],
    style: str,
    tags: list[str],
    prompt: str,
    character_name: str,
    data_dir: Path,
    trace_dir: Path,
) -> GalleryImage | None:
    """The run as a finished generation (trace pages, status document) and, when it passed,
    its winner as a gallery image whose file lives in the character's folder.

    Returns the gallery image, or None when the run failed. Raises ``CharacterNotFoundError``
    when the character was deleted while the image was being made (nothing is then stored).
    """
    character = character_crud.get_character(session=session, character_id=character_id, user_id=user_id)
    if character is None:
        raise characters.CharacterNotFoundError([character_id])
    generation_crud.create_finished_generation(
        session=session, generation_id=outcome.generation_id, user_id=user_id, request=request, summary=outcome.summary
    )
    generation_crud.record_scene(
        session=session, generation_id=outcome.generation_id, result=outcome.result, trace_dir=trace_dir
    )
    winner = outcome.result.winner
    if not outcome.passed or winner is None:
        return None
    attempt = outcome.winner_attempt
    reference = attempt.reference if attempt is not None else None
    features = reference_features(prompt)
    image = GalleryImage(
        id=character_crud.new_id(),
        character_id=character_id,
        filename=f"{_slug(character_name)}_smart_{int(time.time() * 1000)}.png",
        prompt=prompt,
        enhanced_prompt=outcome.result.enhanced_prompt,
        style=style,
        tags=tags,
        quality_score=winner.overall,
        consistency_score=winner.consistency,
        reference_id=None if reference is None else reference.id,
        reference_type=None if reference is None else REFERENCE_TYPE[reference.kind],
        generation_id=outcome.generation_id,
        shot_type=features.shot_type,
        camera_angle=features.angle,
        keywords=extract_keywords(prompt),
        attempts=len(outcome.result.attempts),
    )
    return characters.add_gallery_image(
        session=session,
        character=character,
        image=image,
        source=outcome.result.winner_path or winner.path,
        data_dir=data_dir,
    )


def smart_request_record(
    *,
    character_id: str,
    body: dict[str, Any],
    settings: GenerationSettings,
    backends: BackendSettings,
) -> dict[str, Any]:
    """What the generation row stores as its request: JobSpec-shaped (concept, scenes,
    settings, backends) so generic readers understand it, plus the smart-image request."""
    return json.loads(
        json.dumps(
            {
                "kind": "smart_image",
                "character_id": character_id,
                "concept": body["prompt"],
                "scenes": [body["prompt"]],
                "settings": settings.model_dump(mode="json"),
                "backends": backends.model_dump(mode="json"),
                "smart_image": body,
            },
            default=str,
        )
    )


def validation_notes(quality: float, consistency: float | None, attempts: int) -> str:
    grade = "High" if quality >= 85 else "Good" if quality >= 70 else "Acceptable"
    if consistency is None:
        match = "no reference to check consistency against"
    elif consistency >= 90:
        match = "excellent consistency"
    elif consistency >= 80:
        match = "strong consistency"
    else:
        match = "acceptable consistency"
    retries = "" if attempts == 1 else f" after {attempts - 1} retr{'y' if attempts == 2 else 'ies'}"
    return f"{grade} quality generation with {match}{retries}"


async def generate_smart_image(
    *,
    engine: Engine,
    settings: Settings,
    backends: DefaultBackends,
    user_id: int,
    character_id: str,
    body: SmartImageRequest,
    base_url: str,
) -> SmartImageSuccess:
    """Seed 003: analyse the prompt, rank the character's references, generate, validate,
    retry with the next reference, and add the image that passes to the gallery."""

    # 1. The character and its reference candidates
    def load() -> tuple[Character, list[ReferenceImage]] | None:
        with Session(engine) as session:
            character = character_crud.get_character(session=session, character_id=character_id, user_id=user_id)
            if character is None:
                return None
            candidates = characters.character_candidates(
                session=session, character_id=character_id, data_dir=settings.data_dir
            )
            return character, candidates

    loaded = await asyncio.to_thread(load)
    if loaded is None:
        raise SmartImageFailure(404, f"Character {character_id!r} not found")
    character, candidates = loaded
    if not candidates:
        raise SmartImageFailure(
            400,
            "No Reference Images: the character has no master reference, core references or gallery images; "
            f"upload one to /api/v1/characters/{character_id}/references",
            SmartImageErrorDetails(failureReasons=["No Reference Images"]),
        )

    # 2. The run's settings and backends
    name = body.characterName or character.name
    run_settings = smart_settings(
        max_retries=body.maxRetries,
        quality_threshold=body.qualityThreshold,
        consistency_threshold=body.consistencyThreshold,
        num_variations=body.numVariations,
        seed=body.seed,
    )
    run_backends = settings.default_backends()
    generation_id = smart_generation_id(character_id)

    # 3. The run, on this loop rather than a fresh one per request: cached async clients (an
    #    LLM's HTTP pool) are bound to the loop that opened them. The graph's nodes run every
    #    model call and image write in worker threads, so the loop only does the bookkeeping.
    try:
        services = await asyncio.to_thread(backends.get)
        outcome = await run_smart_image(
            generation_id=generation_id,
            character_id=character_id,
            character_name=name,
            description=character.description,
            prompt=body.prompt,
            style=body.style,
            candidates=candidates,
            settings=run_settings,
            backends=run_backends,
            services=services,
            trace_root=settings.trace_root,
        )
    except SmartImageRunError as exc:  # a backend is down or broke: seed 003's "Service Unavailable"
        logger.error("smart image %s failed: %s", generation_id, exc)
        raise SmartImageFailure(503, f"Service Unavailable: {exc}") from exc
    except Exception as exc:
        logger.exception("smart image %s failed", generation_id)
        raise SmartImageFailure(503, f"Service Unavailable: {type(exc).__name__}: {exc}") from exc

    # 4. Store it: the generation, and the image that passed in the gallery
    record = smart_request_record(
        character_id=character_id, body=body.model_dump(mode="json"), settings=run_settings, backends=run_backends
    )

    def store() -> GalleryImage | None:
        with Session(engine) as session:
            return record_smart_image(
                session=session,
                user_id=user_id,
                character_id=character_id,
                outcome=outcome,
                request=record,
                style=body.style,
                tags=body.tag_list(),
                prompt=body.prompt,
                character_name=name,
                data_dir=settings.data_dir,
                trace_dir=layout.generation_dir(settings.trace_root, generation_id),
            )

    try:
        image = await asyncio.to_thread(store)
    except characters.CharacterNotFoundError as exc:
        raise SmartImageFailure(404, f"Character {character_id!r} not found (deleted during generation)") from exc
    result = outcome.result
    if image is None or result.winner is None:
        error = result.error or {}
        raise SmartImageFailure(
            400,
            f"All Attempts Failed: {error.get('error', '')}".rstrip(": "),
            SmartImageErrorDetails.model_validate(error.get("details") or {}),
        )

    # 5. Seed 003's answer
    winner = result.winner
    attempts = len(result.attempts)
    data = SmartImageData(
        characterId=character_id,
        characterName=name,
        imageId=image.id,
        publicUrl=f"{base_url.rstrip('/')}/api/v1/characters/{character_id}/gallery/{image.id}/image",
        selectedReferenceId=image.reference_id,
        selectedReferenceType=image.reference_type,
        qualityScore=winner.overall,
        consistencyScore=winner.consistency,
        attempts=attempts,
        generationTime=outcome.elapsed_ms,
        validationNotes=validation_notes(winner.overall, winner.consistency, attempts),
        filename=image.filename,
        generationId=generation_id,
        promptAnalysis=outcome.features.model_dump(),
    )
    message = f"Smart image generated successfully in {attempts} attempt{'s' if attempts > 1 else ''}"
    return SmartImageSuccess(message=message, data=data)
