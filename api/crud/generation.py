"""Generations and their scenes, attempts and variations: data access only.

Every function takes the session as a keyword argument and commits its own unit of work, so
a caller never sees half of a change. The job runner, the routes, the assistant's tools and
the smart image all store generations through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from imageforge.api.models import utcnow
from imageforge.api.models.generation import (
    TERMINAL_STATUSES,
    AttemptRecord,
    Generation,
    Scene,
    Variation,
)
from imageforge.traces.schemas import RunSummary, SceneResult

__all__ = [
    "count_by_status",
    "create_finished_generation",
    "create_generation",
    "finish_generation",
    "get_generation",
    "list_generations",
    "load_scenes",
    "mark_cancelled",
    "record_scene",
    "record_scene_progress",
    "recoverable_generations",
    "relative_to",
    "request_cancel",
    "set_plan",
    "start_generation",
]


# Generations -------------------------------------------------------------------------------
def create_generation(
    *, session: Session, generation_id: str, user_id: int, concept: str, request: dict[str, Any]
) -> Generation:
    generation = Generation(
        id=generation_id, user_id=user_id, concept=concept, request=request, status="queued", current_step="queued"
    )
    session.add(generation)
    session.commit()
    session.refresh(generation)
    return generation


def create_finished_generation(
    *, session: Session, generation_id: str, user_id: int, request: dict[str, Any], summary: RunSummary
) -> Generation:
    """A generation that ran outside the job queue (a smart image), stored as finished from its
    run summary; its scenes are recorded with :func:`record_scene`."""
    status = summary.status if summary.status in ("completed", "failed") else "failed"
    generation = Generation(
        id=generation_id,
        user_id=user_id,
        concept=summary.concept,
        status=status,
        progress=100,
        current_step="completed" if status == "completed" else "failed validation",
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
    session.add(generation)
    session.commit()
    session.refresh(generation)
    return generation


def get_generation(*, session: Session, generation_id: str, user_id: int | None) -> Generation | None:
    """The generation if it exists and belongs to ``user_id`` (``None``: any owner, for the runner)."""
    generation = session.get(Generation, generation_id)
    if generation is None or (user_id is not None and generation.user_id != user_id):
        return None
    return generation


def list_generations(
    *, session: Session, user_id: int, status: str | None, skip: int, limit: int
) -> tuple[Sequence[Generation], int]:
    query = select(Generation).where(Generation.user_id == user_id)
    counter = select(func.count()).select_from(Generation).where(Generation.user_id == user_id)
    if status is not None:
        query = query.where(Generation.status == status)
        counter = counter.where(Generation.status == status)
    rows = session.exec(
        query.order_by(col(Generation.created_at).desc(), col(Generation.id)).offset(skip).limit(limit)
    ).all()
    count = session.exec(counter).one()
    return rows, int(count)


def count_by_status(*, session: Session) -> dict[str, int]:
    rows = session.exec(select(Generation.status, func.count()).group_by(Generation.status)).all()
    return {status: int(count) for status, count in rows}


def recoverable_generations(*, session: Session) -> Sequence[Generation]:
    """Jobs a previous process accepted and did not finish, oldest first."""
    query = (
        select(Generation)
        .where(col(Generation.status).in_(("queued", "running")))
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return session.exec(query).all()


def start_generation(*, session: Session, generation_id: str) -> Generation | None:
    """Mark a job running; ``None`` when it is gone, finished or cancelled meanwhile."""
    generation = session.get(Generation, generation_id)
    if generation is None or generation.status in TERMINAL_STATUSES:
        return None
    if generation.cancel_requested:
        _finish(generation, status="cancelled", step="cancelled before it started")
        session.add(generation)
        session.commit()
        return None
    generation.status = "running"
    generation.current_step = "starting" if generation.runs == 0 else "resuming"
    generation.runs += 1
    if generation.started_at is None:
        generation.started_at = utcnow()
    session.add(generation)
    session.commit()
    session.refresh(generation)
    return generation


def set_plan(*, session: Session, generation_id: str, plan: dict[str, Any], progress: int, step: str) -> None:
    generation = session.get(Generation, generation_id)
    if generation is None:
        return
    generation.plan = plan
    generation.progress = max(generation.progress, progress)
    generation.current_step = step
    session.add(generation)
    session.commit()


def _finish(generation: Generation, *, status: str, step: str, error: str | None = None) -> None:
    now = utcnow()
    generation.status = status
    generation.current_step = step
    generation.error = error
    generation.finished_at = now
    if status == "completed":
        generation.progress = 100
    if generation.started_at is not None:
        started = generation.started_at
        if started.tzinfo is None:  # databases without time zones hand back naive UTC
            started = started.replace(tzinfo=now.tzinfo)
        generation.elapsed_s = round((now - started).total_seconds(), 3)


def finish_generation(
    *,
    session: Session,
    generation_id: str,
    status: str,
    step: str,
    error: str | None = None,
    warnings: list[str] | None = None,
    backends: dict[str, Any] | None = None,
    plan: dict[str, Any] | None = None,
) -> Generation | None:
    generation = session.get(Generation, generation_id)
    if generation is None:
        return None
    _finish(generation, status=status, step=step, error=error)
    if warnings is not None:
        generation.warnings = list(warnings)
    if backends is not None:
        generation.backends = backends
    if plan is not None and generation.plan is None:
        generation.plan = plan
    session.add(generation)
    session.commit()
    session.refresh(generation)
    return generation


def request_cancel(*, session: Session, generation_id: str) -> Generation | None:
    generation = session.get(Generation, generation_id)
    if generation is None:
        return None
    if generation.status not in TERMINAL_STATUSES and not generation.cancel_requested:
        generation.cancel_requested = True
        session.add(generation)
        session.commit()
        session.refresh(generation)
    return generation


def mark_cancelled(*, session: Session, generation_id: str, step: str) -> Generation | None:
    generation = session.get(Generation, generation_id)
    if generation is None or generation.status in TERMINAL_STATUSES:
        return generation
    generation.cancel_requested = True
    _finish(generation, status="cancelled", step=step)
    session.add(generation)
    session.commit()
    session.refresh(generation)
    return generation


# Scenes, attempts, variations --------------------------------------------------------------
def relative_to(path: str | None, folder: Path) -> str | None:
    """A trace path as the API addresses it: relative to the generation's folder."""
    if not path:
        return None
    candidate = Path(path)
    try:
        return candidate.resolve().relative_to(folder.resolve()).as_posix()
    except (ValueError, OSError):
        pass
    parts = candidate.parts
    for i, part in enumerate(parts):  # a path recorded from another working directory
        if part.startswith("scene_"):
            return Path(*parts[i:]).as_posix()
    return None


def record_scene(*, session: Session, generation_id: str, result: SceneResult, trace_dir: Path) -> Scene:
    """Store a finished scene with its attempts and variations, replacing an older copy."""
    existing = session.exec(
        select(Scene).where(Scene.generation_id == generation_id, Scene.scene_number == result.scene_number)
    ).first()
    if existing is not None:
        attempt_ids = select(AttemptRecord.id).where(AttemptRecord.scene_id == existing.id)
        session.execute(delete(Variation).where(col(Variation.attempt_id).in_(attempt_ids)))
        session.execute(delete(AttemptRecord).where(col(AttemptRecord.scene_id) == existing.id))
        session.delete(existing)
        session.flush()
    winner = result.winner
    scene = Scene(
        generation_id=generation_id,
        scene_number=result.scene_number,
        status=result.status,
        enhanced_prompt=result.enhanced_prompt,
        negative_prompt=result.negative_prompt,
        winner_path=relative_to(result.winner_path or (winner.path if winner else None), trace_dir),
        winner_attempt=result.winner_attempt,
        quality_score=winner.overall if winner else None,
        consistency_score=winner.consistency if winner else None,
        components=dict(winner.components) if winner else {},
        warnings=list(result.warnings),
        reason=result.reason,
        error=result.error,
        timings=dict(result.timings_s),
    )
    session.add(scene)
    session.flush()
    assert scene.id is not None, "a flushed row has its id"
    for attempt in result.attempts:
        record = AttemptRecord(
            scene_id=scene.id,
            attempt=attempt.attempt,
            reference_id=attempt.reference.id if attempt.reference else None,
            reference_kind=attempt.reference.kind if attempt.reference else None,
            reference_path=attempt.reference.path if attempt.reference else None,
            seeds=list(attempt.seeds),
            best_index=attempt.best_index,
            quality=attempt.quality,
            consistency=attempt.consistency,
            passed=attempt.passed,
            reason=attempt.reason,
            failure_reasons=list(attempt.failure_reasons),
            generator=attempt.generator,
            generator_model=attempt.generator_model,
            cache_hits=attempt.cache_hits,
            timings=dict(attempt.timings_s),
            warnings=list(attempt.warnings),
        )
        session.add(record)
        session.flush()
        assert record.id is not None, "a flushed row has its id"
        for variation in attempt.variations:
            session.add(
                Variation(
                    attempt_id=record.id,
                    index=variation.index,
                    seed=variation.seed,
                    path=relative_to(variation.path, trace_dir) or variation.path,
                    overall=variation.overall,
                    consistency=variation.consistency,
                    components=dict(variation.components),
                    rank=variation.rank,
                )
            )
    session.commit()
    session.refresh(scene)
    return scene


def record_scene_progress(
    *, session: Session, generation_id: str, result: SceneResult, trace_dir: Path, progress: int, step: str
) -> None:
    """A scene a running job just finished, with the job's progress after it."""
    record_scene(session=session, generation_id=generation_id, result=result, trace_dir=trace_dir)
    generation = get_generation(session=session, generation_id=generation_id, user_id=None)
    if generation is not None and generation.status == "running":
        generation.progress = max(generation.progress, progress)
        generation.current_step = step
        session.add(generation)
        session.commit()


def load_scenes(
    *, session: Session, generation_id: str
) -> list[tuple[Scene, list[tuple[AttemptRecord, list[Variation]]]]]:
    """Scenes in order, each with its attempts in order, each with its variations by index."""
    scenes = session.exec(
        select(Scene).where(Scene.generation_id == generation_id).order_by(col(Scene.scene_number))
    ).all()
    if not scenes:
        return []
    scene_ids = [scene.id for scene in scenes]
    attempts = session.exec(
        select(AttemptRecord).where(col(AttemptRecord.scene_id).in_(scene_ids)).order_by(col(AttemptRecord.attempt))
    ).all()
    attempt_ids = [attempt.id for attempt in attempts]
    variations = (
        session.exec(
            select(Variation).where(col(Variation.attempt_id).in_(attempt_ids)).order_by(col(Variation.index))
        ).all()
        if attempt_ids
        else []
    )
    by_attempt: dict[int, list[Variation]] = {}
    for variation in variations:
        by_attempt.setdefault(variation.attempt_id, []).append(variation)
    by_scene: dict[int, list[tuple[AttemptRecord, list[Variation]]]] = {}
    for attempt in attempts:
        by_scene.setdefault(attempt.scene_id, []).append((attempt, by_attempt.get(attempt.id or -1, [])))
    return [(scene, by_scene.get(scene.id or -1, [])) for scene in scenes]
