"""Seed 003's smart image: a character image made by the same run as every storyboard, as a
job through the same queue.

The request becomes a one-scene storyboard with an explicit plan (the prompt as its scene; the
character's name and description, and the style, as its consistency markers) whose scene
shows the character, so ``graph.run.run_storyboard`` enhances the prompt, ranks the
character's references, follows the attempt strategy, generates, scores, validates, retries
and selects in strict mode, and writes an ordinary trace. It is a job of kind
``smart_image`` (``api.models.generation.JobSpec``): submitted like every generation (the
global queue and the user's cap apply, and a cancel by id stops it), run by whichever
process runs jobs, and followed by two steps inside the job (:func:`finish_smart_image`):
the prompt analysis, the ranking and the attempt schedule the scene followed are written
beside the trace as ``smart_image.json``, and an image that passed is copied into the
character's gallery, so deleting the trace never breaks the gallery. The run is an ordinary
generation (the trace pages and the status document show it like any storyboard).

The endpoint's contract is synchronous: the request waits for its job
(``api.services.waiting``) at most ``IMAGEFORGE_SMART_IMAGE_TIMEOUT_S``, then cancels it and
answers 504, and answers from what the job stored. Everything that cannot be done is a
``SmartImageFailure``: the app answers it in seed 003's error shape (``api.main``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

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
from imageforge.api.models.generation import JobSpec, SmartImageJob
from imageforge.api.services import characters
from imageforge.api.services.job_queue import JobQueue, QueueFullError
from imageforge.api.services.submission import submit_job
from imageforge.api.services.waiting import wait_for_job
from imageforge.graph.context import BackendSettings, GenerationSettings
from imageforge.tools.references import (
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
    "add_to_gallery",
    "finish_smart_image",
    "gallery_image_of",
    "generate_smart_image",
    "smart_generation_id",
    "smart_job_spec",
    "smart_plan",
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

    def __init__(
        self,
        status_code: int,
        error: str,
        details: SmartImageErrorDetails | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status_code = status_code
        self.error = error
        self.details = details or SmartImageErrorDetails()
        self.headers = headers or {}


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


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "character"


# The job (whichever process runs jobs) -----------------------------------------------------
def smart_job_spec(
    *,
    user_id: int,
    character: Character,
    candidates: list[ReferenceImage],
    body: SmartImageRequest,
    backends: BackendSettings,
) -> JobSpec:
    """Seed 003's request as a stored job: a one-scene storyboard with an explicit plan that
    shows the character, strict settings, and the inputs the steps after the run need."""
    if not candidates:
        raise ValueError("`candidates` must hold at least one reference image.")
    name = body.characterName or character.name
    settings = smart_settings(
        max_retries=body.maxRetries,
        quality_threshold=body.qualityThreshold,
        consistency_threshold=body.consistencyThreshold,
        num_variations=body.numVariations,
        seed=body.seed,
    )
    return JobSpec(
        kind="smart_image",
        smart=SmartImageJob(
            user_id=user_id,
            character_id=character.id,
            character_name=name,
            prompt=body.prompt,
            style=body.style,
            tags=body.tag_list(),
            body=body.model_dump(mode="json"),
        ),
        concept=body.prompt,
        settings=settings,
        backends=backends,
        plan=smart_plan(prompt=body.prompt, character_name=name, description=character.description, style=body.style),
        characters=[character.id],
        character_references={character.id: candidates},
    )


async def finish_smart_image(
    generation_id: str, spec: JobSpec, summary: RunSummary, *, engine: Engine, settings: Settings
) -> RunSummary:
    """The smart image's steps after its storyboard run, inside the job: write
    ``smart_image.json`` (the prompt analysis, the ranking, the attempt schedule the scene
    followed) and, when the scene passed, add its winner to the character's gallery.

    Done in the job rather than by the waiting request, so a request that went away, a
    restart that resumed the job, or a retention policy that removes a finished trace at
    once cannot lose the image. Returns the summary, with a warning when the character was
    deleted meanwhile (nothing is then added).
    """
    smart = spec.smart
    if smart is None:
        raise ValueError(f"job {generation_id} is a smart image without its `smart` inputs")
    if summary.status == "cancelled" or not summary.scenes or not summary.enhancements:
        return summary  # the run's own failure (a backend, a cancel) stands
    result = summary.scenes[0]
    candidates = spec.character_references.get(smart.character_id, [])
    features = reference_features(summary.enhancements[0].final.prompt)
    ranking = rank_references(candidates, features)
    await asyncio.to_thread(
        write_json,
        layout.generation_dir(settings.trace_root, generation_id) / SMART_IMAGE_FILE,
        {
            "character": smart.character_name,
            "prompt": smart.prompt,
            "style": smart.style,
            "prompt_analysis": reference_features(smart.prompt).model_dump(),
            "enhanced_prompt_analysis": features.model_dump(),
            "ranking": [r.model_dump(mode="json") for r in ranking],
            "schedule": [None if r is None else r.id for r in attempt_references(ranking, spec.settings.max_attempts)],
        },
    )
    if result.status != "passed" or result.winner is None:
        return summary
    try:
        await asyncio.to_thread(add_to_gallery, engine, generation_id, smart, result, settings.data_dir)
    except characters.CharacterNotFoundError:
        warning = f"character {smart.character_id} was deleted during the run: the image was not added to its gallery"
        logger.warning("smart image %s: %s", generation_id, warning)
        return summary.model_copy(update={"warnings": [*summary.warnings, warning]})
    return summary


def _winner_attempt(result: SceneResult) -> Attempt | None:
    return next((a for a in result.attempts if a.attempt == result.winner_attempt), None)


def add_to_gallery(
    engine: Engine, generation_id: str, smart: SmartImageJob, result: SceneResult, data_dir: Path
) -> GalleryImage:
    """The passed scene's winner as a gallery image whose file lives in the character's
    folder (so deleting the trace never breaks the gallery). Once per generation: a resumed
    job finds the image it added before. ``CharacterNotFoundError`` when the character is gone.
    """
    winner = result.winner
    if winner is None:
        raise ValueError(f"generation {generation_id}'s scene has no winner to add to the gallery")
    with Session(engine) as session:
        existing = gallery_image_of(session, generation_id)
        if existing is not None:
            return existing
        character = character_crud.get_character(
            session=session, character_id=smart.character_id, user_id=smart.user_id
        )
        if character is None:
            raise characters.CharacterNotFoundError([smart.character_id])
        attempt = _winner_attempt(result)
        reference = attempt.reference if attempt is not None else None
        features = reference_features(smart.prompt)
        image = GalleryImage(
            id=character_crud.new_id(),
            character_id=smart.character_id,
            filename=f"{_slug(smart.character_name)}_smart_{int(time.time() * 1000)}.png",
            prompt=smart.prompt,
            enhanced_prompt=result.enhanced_prompt,
            style=smart.style,
            tags=smart.tags,
            quality_score=winner.overall,
            consistency_score=winner.consistency,
            reference_id=None if reference is None else reference.id,
            reference_type=None if reference is None else REFERENCE_TYPE[reference.kind],
            generation_id=generation_id,
            shot_type=features.shot_type,
            camera_angle=features.angle,
            keywords=extract_keywords(smart.prompt),
            attempts=len(result.attempts),
        )
        return characters.add_gallery_image(
            session=session,
            character=character,
            image=image,
            source=result.winner_path or winner.path,
            data_dir=data_dir,
        )


def gallery_image_of(session: Session, generation_id: str) -> GalleryImage | None:
    return session.exec(select(GalleryImage).where(GalleryImage.generation_id == generation_id)).first()


# The request (the API process) -------------------------------------------------------------
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


@dataclass(frozen=True)
class _Stored:
    """What the finished job left in the database, read in one short session."""

    status: str
    error: str | None
    elapsed_s: float | None
    image: GalleryImage | None
    scene_error: dict[str, Any] | None
    has_scene: bool
    character_exists: bool


def _load_stored(engine: Engine, generation_id: str, character_id: str, user_id: int) -> _Stored:
    with Session(engine) as session:
        row = generation_crud.get_generation(session=session, generation_id=generation_id, user_id=None)
        scenes = generation_crud.load_scenes(session=session, generation_id=generation_id)
        scene = scenes[0][0] if scenes else None
        character = character_crud.get_character(session=session, character_id=character_id, user_id=user_id)
        return _Stored(
            status=row.status if row is not None else "failed",
            error=row.error if row is not None else "the generation was removed",
            elapsed_s=row.elapsed_s if row is not None else None,
            image=gallery_image_of(session, generation_id),
            scene_error=scene.error if scene is not None else None,
            has_scene=scene is not None,
            character_exists=character is not None,
        )


def _answer(stored: _Stored, *, generation_id: str, character_id: str, name: str, base_url: str) -> SmartImageSuccess:
    """Seed 003's answer for a finished job, or the ``SmartImageFailure`` that says why not."""
    if stored.status == "cancelled":
        raise SmartImageFailure(503, f"Service Unavailable: generation {generation_id} was cancelled")
    if stored.image is None:
        if not stored.character_exists:
            raise SmartImageFailure(404, f"Character {character_id!r} not found (deleted during generation)")
        if not stored.has_scene:  # a backend is down or broke: seed 003's "Service Unavailable"
            raise SmartImageFailure(503, f"Service Unavailable: {stored.error or 'the run ended without a scene'}")
        error = stored.scene_error or {}
        raise SmartImageFailure(
            400,
            f"All Attempts Failed: {error.get('error', '')}".rstrip(": "),
            SmartImageErrorDetails.model_validate(error.get("details") or {}),
        )
    image = stored.image
    data = SmartImageData(
        characterId=character_id,
        characterName=name,
        imageId=image.id,
        publicUrl=f"{base_url.rstrip('/')}/api/v1/characters/{character_id}/gallery/{image.id}/image",
        selectedReferenceId=image.reference_id,
        selectedReferenceType=image.reference_type,
        qualityScore=image.quality_score,
        consistencyScore=image.consistency_score,
        attempts=image.attempts,
        generationTime=round((stored.elapsed_s or 0.0) * 1000),
        validationNotes=validation_notes(image.quality_score, image.consistency_score, image.attempts),
        filename=image.filename,
        generationId=generation_id,
        promptAnalysis=reference_features(image.enhanced_prompt).model_dump(),
    )
    attempts = image.attempts
    message = f"Smart image generated successfully in {attempts} attempt{'s' if attempts > 1 else ''}"
    return SmartImageSuccess(message=message, data=data)


async def generate_smart_image(
    *,
    runner: JobQueue,
    engine: Engine,
    settings: Settings,
    user_id: int,
    character_id: str,
    body: SmartImageRequest,
    base_url: str,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> SmartImageSuccess:
    """Seed 003 as a job: check the character, submit its one-scene storyboard through the
    job queue (its limits apply: 429), wait for it, bounded by ``smart_image_timeout_s``
    (then the job is cancelled: 504), and answer from what the job stored."""

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

    # 2. The job, queued like every generation
    spec = smart_job_spec(
        user_id=user_id,
        character=character,
        candidates=candidates,
        body=body,
        backends=settings.default_backends(),
    )

    async def build(_: str) -> JobSpec:
        return spec

    try:
        accepted = await submit_job(
            runner=runner,
            engine=engine,
            settings=settings,
            user_id=user_id,
            concept=body.prompt,
            build=build,
            base_url=base_url,
            generation_id=smart_generation_id(character_id),
        )
    except QueueFullError as exc:
        raise SmartImageFailure(
            429, f"Too Many Requests: {exc}", headers={"Retry-After": str(exc.retry_after_s)}
        ) from exc
    generation_id = accepted.generation_id

    # 3. Wait for it, bounded; a request that gives up (or whose client left) cancels it
    outcome = await wait_for_job(
        hub=runner.hub,
        engine=engine,
        generation_id=generation_id,
        timeout_s=settings.smart_image_timeout_s,
        disconnected=disconnected,
    )
    if outcome in ("timeout", "disconnected"):
        await runner.cancel(generation_id)
        reason = (
            "the client disconnected"
            if outcome == "disconnected"
            else f"it did not finish within {settings.smart_image_timeout_s:g} s (IMAGEFORGE_SMART_IMAGE_TIMEOUT_S)"
        )
        raise SmartImageFailure(504, f"Gateway Timeout: generation {generation_id} was cancelled: {reason}")

    # 4. Seed 003's answer from what the job stored
    stored = await asyncio.to_thread(_load_stored, engine, generation_id, character_id, user_id)
    name = spec.smart.character_name if spec.smart is not None else character.name
    return _answer(stored, generation_id=generation_id, character_id=character_id, name=name, base_url=base_url)
