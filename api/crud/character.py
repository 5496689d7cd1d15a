"""Characters: storage of their references and gallery, and seed 003's smart image.

A smart image reuses the storyboard's parts instead of a second pipeline: one run of the
enhancement subgraph (the character's name and description are its consistency markers),
then the scene subgraph (rank the character's references, follow the attempt strategy,
generate, score, validate, retry, select, write the trace) in strict mode. The run leaves an
ordinary trace under the trace root and a finished generation row, so the trace pages and
trace endpoints show it like any storyboard. An image that passed is copied into the
character's folder, so deleting the trace never breaks the gallery.

Database functions take the session as a keyword argument and commit their own unit of
work, like ``api.crud``; file paths are derived from ids under ``<data_dir>/characters``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from imageforge.agents.schemas import ConsistencyMarkers, EnhancementResult, ScenePlan, StoryboardPlan
from imageforge.api import crud
from imageforge.api.models import Generation, utcnow
from imageforge.api.models_characters import (
    Character,
    CharacterCreate,
    CharacterReference,
    CharacterUpdate,
    GalleryImage,
)
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.scene import scene_graph
from imageforge.graph.services import Services
from imageforge.graph.state import EnhanceInput, SceneInput
from imageforge.tools.references import (
    PromptAnalysis,
    analyze_prompt,
    attempt_references,
    extract_keywords,
    rank_references,
)
from imageforge.tools.schemas import ReferenceImage
from imageforge.tools.seeds import random_base_seed
from imageforge.tools.storage import atomic_copy, save_png
from imageforge.traces.schemas import Attempt, RunSummary, SceneResult
from imageforge.traces.writer import TraceWriter, write_json

__all__ = [
    "GALLERY_CANDIDATES",
    "REFERENCE_TYPE",
    "SMART_ENHANCEMENT_ITERATIONS",
    "SMART_RESOLUTION",
    "STYLE_MARKERS",
    "CharacterNotFoundError",
    "SmartImageOutcome",
    "add_reference",
    "character_dir",
    "create_character",
    "delete_character",
    "delete_gallery_image",
    "delete_reference",
    "gallery_path",
    "get_character",
    "list_characters",
    "list_gallery",
    "list_references",
    "new_id",
    "record_smart_image",
    "reference_candidates",
    "reference_path",
    "resolve_character_references",
    "run_smart_image",
    "smart_generation_id",
    "smart_request_record",
    "smart_settings",
    "update_character",
]

logger = logging.getLogger(__name__)

#: Newest gallery images that join the reference candidates (seed 003's "generated", +5).
GALLERY_CANDIDATES = 20
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


class CharacterNotFoundError(LookupError):
    """Character ids the caller does not own (or that do not exist), in request order."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"unknown character id(s): {', '.join(missing)}")
        self.missing = missing


def new_id() -> str:
    """16 hex digits: short enough for generation ids, random enough not to be guessed."""
    return uuid.uuid4().hex[:16]


def smart_generation_id(character_id: str) -> str:
    return f"char-{character_id}-{new_id()}"


# Storage ------------------------------------------------------------------------------------
def character_dir(data_dir: Path, character_id: str) -> Path:
    return data_dir / "characters" / character_id


def reference_path(data_dir: Path, reference: CharacterReference) -> Path:
    return character_dir(data_dir, reference.character_id) / "references" / reference.filename


def gallery_path(data_dir: Path, image: GalleryImage) -> Path:
    return character_dir(data_dir, image.character_id) / "gallery" / f"{image.id}.png"


# Characters ---------------------------------------------------------------------------------
def create_character(*, session: Session, user_id: int, create: CharacterCreate) -> Character:
    character = Character(
        id=new_id(),
        user_id=user_id,
        name=create.name,
        description=create.description,
        tags=create.tags,
    )
    session.add(character)
    session.commit()
    session.refresh(character)
    return character


def get_character(*, session: Session, character_id: str, user_id: int) -> Character | None:
    """The character if it exists and belongs to ``user_id``."""
    character = session.get(Character, character_id)
    if character is None or character.user_id != user_id:
        return None
    return character


def list_characters(*, session: Session, user_id: int, skip: int, limit: int) -> tuple[Sequence[Character], int]:
    query = (
        select(Character)
        .where(Character.user_id == user_id)
        .order_by(col(Character.created_at).desc(), col(Character.id))
        .offset(skip)
        .limit(limit)
    )
    count = session.exec(select(func.count()).select_from(Character).where(Character.user_id == user_id)).one()
    return session.exec(query).all(), int(count)


def update_character(*, session: Session, character: Character, update: CharacterUpdate) -> Character:
    for name, value in update.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(character, name, value)
    character.updated_at = utcnow()
    session.add(character)
    session.commit()
    session.refresh(character)
    return character


def delete_character(*, session: Session, character: Character, data_dir: Path) -> None:
    """The rows first (one commit), then the files: a failed commit leaves everything."""
    session.execute(delete(CharacterReference).where(col(CharacterReference.character_id) == character.id))
    session.execute(delete(GalleryImage).where(col(GalleryImage.character_id) == character.id))
    session.delete(character)
    session.commit()
    shutil.rmtree(character_dir(data_dir, character.id), ignore_errors=True)


def list_references(*, session: Session, character_id: str) -> list[CharacterReference]:
    """Master first, then core references in upload order."""
    rows = session.exec(
        select(CharacterReference)
        .where(CharacterReference.character_id == character_id)
        .order_by(col(CharacterReference.created_at), col(CharacterReference.id))
    ).all()
    return sorted(rows, key=lambda r: r.kind != "master")


def list_gallery(*, session: Session, character_id: str, limit: int | None = None) -> list[GalleryImage]:
    """Newest first."""
    query = (
        select(GalleryImage)
        .where(GalleryImage.character_id == character_id)
        .order_by(col(GalleryImage.created_at).desc(), col(GalleryImage.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def add_reference(
    *,
    session: Session,
    character: Character,
    image: Image.Image,
    kind: str,
    angle: str | None,
    shot_type: str,
    keywords: list[str],
    data_dir: Path,
) -> CharacterReference:
    """Store a validated image as a reference. A new master replaces the old one (row and file)."""
    reference_id = new_id()
    reference = CharacterReference(
        id=reference_id,
        character_id=character.id,
        kind=kind,
        angle=angle,
        shot_type=shot_type,
        keywords=keywords,
        filename=f"{reference_id}.png",
        width=image.width,
        height=image.height,
    )
    path = save_png(image, reference_path(data_dir, reference))
    replaced: list[CharacterReference] = []
    try:
        if kind == "master":
            replaced = list(
                session.exec(
                    select(CharacterReference).where(
                        CharacterReference.character_id == character.id,
                        CharacterReference.kind == "master",
                    )
                ).all()
            )
            for old in replaced:
                session.delete(old)
        character.updated_at = utcnow()
        session.add(character)
        session.add(reference)
        session.commit()
    except BaseException:
        session.rollback()
        path.unlink(missing_ok=True)
        raise
    for old in replaced:
        reference_path(data_dir, old).unlink(missing_ok=True)
    session.refresh(reference)
    return reference


def delete_reference(*, session: Session, reference: CharacterReference, data_dir: Path) -> None:
    session.delete(reference)
    session.commit()
    reference_path(data_dir, reference).unlink(missing_ok=True)


def delete_gallery_image(*, session: Session, image: GalleryImage, data_dir: Path) -> None:
    session.delete(image)
    session.commit()
    gallery_path(data_dir, image).unlink(missing_ok=True)


# Reference candidates -----------------------------------------------------------------------
def reference_candidates(
    references: Sequence[CharacterReference], gallery: Sequence[GalleryImage], data_dir: Path
) -> list[ReferenceImage]:
    """The character's images as seed-003 candidates: master, core turnarounds, gallery.

    Files that went missing from disk are left out rather than failing the run later.
    """
    candidates: list[ReferenceImage] = []
    for reference in references:
        path = reference_path(data_dir, reference)
        if not path.is_file():
            logger.warning(
                "reference %s of character %s is missing on disk",
                reference.id,
                reference.character_id,
            )
            continue
        candidates.append(
            ReferenceImage(
                id=reference.id,
                kind="master" if reference.kind == "master" else "core",
                path=str(path.resolve()),
                shot_type=reference.shot_type,
                camera_angle=reference.angle or "",
                keywords=list(reference.keywords),
            )
        )
    for image in gallery:
        path = gallery_path(data_dir, image)
        if not path.is_file():
            continue
        candidates.append(
            ReferenceImage(
                id=image.id,
                kind="generated",
                path=str(path.resolve()),
                quality_score=image.quality_score,
                consistency_score=image.consistency_score,
                shot_type=image.shot_type,
                camera_angle=image.camera_angle,
                keywords=list(image.keywords),
            )
        )
    return candidates


def resolve_character_references(
    *, session: Session, user_id: int, character_ids: Sequence[str], data_dir: Path
) -> dict[str, list[ReferenceImage]]:
    """Character id -> its candidates, for ``StoryboardRequest.character_references``.

    Raises ``CharacterNotFoundError`` naming every id the caller does not own.
    """
    wanted = list(dict.fromkeys(character_ids))
    missing = [cid for cid in wanted if get_character(session=session, character_id=cid, user_id=user_id) is None]
    if missing:
        raise CharacterNotFoundError(missing)
    return {
        cid: reference_candidates(
            list_references(session=session, character_id=cid),
            list_gallery(session=session, character_id=cid, limit=GALLERY_CANDIDATES),
            data_dir,
        )
        for cid in wanted
    }


# Smart image --------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class SmartImageOutcome:
    generation_id: str
    result: SceneResult
    enhancement: EnhancementResult
    analysis: PromptAnalysis
    summary: RunSummary
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
    """Enhance, then generate-score-validate-retry through the scene subgraph; write the trace.

    Raises whatever a backend raised (the caller answers 503); the trace then says "failed".
    """
    # 1. Check inputs
    if not candidates:
        raise ValueError("`candidates` must hold at least one reference image.")
    if not settings.strict:
        raise ValueError("`settings.strict` must be True: a smart image that misses is an error.")

    # 2. Define the run: one scene whose markers carry the character
    started = datetime.now(UTC)
    clock = time.perf_counter()
    base_seed = settings.seed if settings.seed is not None else random_base_seed()
    markers = ConsistencyMarkers(characters=[character_marker(character_name, description)], style=STYLE_MARKERS[style])
    scene = ScenePlan(scene_number=1, prompt=prompt)
    plan = StoryboardPlan(concept=prompt, scenes=[scene], markers=markers, source="heuristic")
    context = Context(settings=settings, backends=backends, trace_root=str(trace_root), services=services)
    writer = TraceWriter(trace_root, generation_id)
    await asyncio.to_thread(writer.ensure_writable)

    def summary(
        status: str,
        results: list[SceneResult],
        enhancements: list[EnhancementResult],
        error: str | None,
    ) -> RunSummary:
        finished = None if status == "running" else datetime.now(UTC)
        value = RunSummary(
            generation_id=generation_id,
            status=status,  # type: ignore[arg-type]
            concept=prompt,
            plan=plan,
            markers=markers,
            settings={**settings.model_dump(mode="json"), "base_seed": base_seed},
            backends=services.describe(),
            scenes=results,
            enhancements=enhancements,
            warnings=[w for r in results for w in r.warnings],
            started_at=started,
            finished_at=finished,
            elapsed_s=None if finished is None else round((finished - started).total_seconds(), 3),
            error=error,
        )
        writer.summary(value)
        return value

    await asyncio.to_thread(summary, "running", [], [], None)
    try:
        # 3. Enhance the prompt once through the critique loop
        enhanced = await enhancement_graph.ainvoke(
            EnhanceInput(generation_id=generation_id, scene=scene, markers=markers), context=context
        )
        enhancement: EnhancementResult = enhanced["enhancements"][1]

        # 4. Record the analysis and ranking the scene subgraph is about to follow
        analysis = analyze_prompt(enhancement.final.prompt)
        ranking = rank_references(candidates, analysis)
        await asyncio.to_thread(
            write_json,
            writer.root / "smart_image.json",
            {
                "character": character_name,
                "prompt": prompt,
                "style": style,
                "prompt_analysis": analyze_prompt(prompt).model_dump(),
                "enhanced_prompt_analysis": analysis.model_dump(),
                "ranking": [r.model_dump(mode="json") for r in ranking],
                "schedule": [None if r is None else r.id for r in attempt_references(ranking, settings.max_attempts)],
            },
        )

        # 5. Generate, score, validate and retry with the next reference
        out = await scene_graph.ainvoke(
            SceneInput(
                generation_id=generation_id,
                scene=scene,
                enhancement=enhancement,
                base_seed=base_seed,
                candidates=candidates,
            ),
            context=context,
        )
        result: SceneResult = out["results"][1]
    except BaseException as exc:  # written in place: this must happen even when cancelled
        summary("failed", [], [], f"{type(exc).__name__}: {exc}")
        raise

    # 6. Final summary
    error = None if result.status == "passed" else (result.error or {}).get("error", "all attempts failed validation")
    status = "completed" if result.status == "passed" else "failed"
    final = await asyncio.to_thread(summary, status, [result], [enhancement], error)
    return SmartImageOutcome(
        generation_id=generation_id,
        result=result,
        enhancement=enhancement,
        analysis=analysis,
        summary=final,
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
    summary = outcome.summary
    character = session.get(Character, character_id)
    if character is None or character.user_id != user_id:
        raise CharacterNotFoundError([character_id])
    image: GalleryImage | None = None
    copied: Path | None = None
    winner = outcome.result.winner
    if outcome.passed and winner is not None:
        attempt = outcome.winner_attempt
        reference = attempt.reference if attempt is not None else None
        analysis = analyze_prompt(prompt)
        image = GalleryImage(
            id=new_id(),
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
            shot_type=analysis.shot_type,
            camera_angle=analysis.angle,
            keywords=extract_keywords(prompt),
            attempts=len(outcome.result.attempts),
        )
        copied = atomic_copy(outcome.result.winner_path or winner.path, gallery_path(data_dir, image))
        session.add(image)
        character.updated_at = utcnow()
        session.add(character)
    generation = Generation(
        id=outcome.generation_id,
        user_id=user_id,
        concept=prompt,
        status=summary.status if summary.status in ("completed", "failed") else "failed",
        progress=100,
        current_step="completed" if summary.status == "completed" else "failed validation",
        request=request,
        plan=None if summary.plan is None else summary.plan.model_dump(mode="json"),
        backends=summary.backends,
        warnings=list(summary.warnings),
        error=summary.error,
        runs=1,
        created_at=summary.started_at,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        elapsed_s=summary.elapsed_s,
    )
    try:
        session.add(generation)
        session.commit()
        crud.record_scene(session=session, generation_id=generation.id, result=outcome.result, trace_dir=trace_dir)
    except BaseException:
        session.rollback()
        if copied is not None:
            copied.unlink(missing_ok=True)
        raise
    if image is not None:
        session.refresh(image)
    return image


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
