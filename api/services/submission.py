"""Accepting a job: check the user's share, reserve a queue slot, store the job, queue it.

Every kind of generation comes through :func:`submit` (storyboards, batch items, uploads,
smart images, /v1/images, the assistant's actions), so every one obeys the same two limits:
the global queue (``queue_size``) and the user's own share (``max_jobs_per_user`` queued plus
running jobs). The user's share is counted in the database, not in the runner, so it holds
across API processes; the count is checked before anything is written (the cheap refusal)
and again after the job is stored, so two concurrent submissions of one user, in one
process or two, cannot both slip past the cap (at worst both are refused).

What a second user waits while another floods: the embedded runner takes waiting jobs
round-robin across users (``api.services.fair_queue``), so the newcomer's job is next after
the current turn and starts when the first worker frees: a wait of at most T (T a job's
time), whatever the flood's size; the cap keeps the flood from filling the global queue.
Celery's queue in the distributed mode is first in, first out, so there the cap is the
bound: at most ``max_jobs_per_user`` jobs of each flooding user are ahead, a wait of at most
U x cap x T / W for U users flooding (W = workers x their concurrency), however large the
flood. ``benchmarks/bench_fairness.py`` measures it.

The order matters for "a rejected request changes nothing stored": the slot is reserved
first (a full queue refuses before anything is written), and a failure after that removes
what was written and gives the slot back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from PIL import Image
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from imageforge.api.core.config import Settings
from imageforge.api.crud import generation as crud
from imageforge.api.crud import preset as preset_crud
from imageforge.api.models.generation import Generation, GenerationAccepted, GenerationCreate, JobSpec
from imageforge.api.services import characters, presets
from imageforge.api.services.job_queue import JobQueue, QueueFullError
from imageforge.api.services.quota import check_storage_quota
from imageforge.api.services.status import generation_links
from imageforge.api.services.uploads import discard_upload, store_reference
from imageforge.graph.context import BackendSettings
from imageforge.tools.schemas import ReferenceImage

__all__ = [
    "ACTIVE_STATUSES",
    "UserJobsFullError",
    "active_jobs",
    "check_user_share",
    "job_spec",
    "new_generation_id",
    "resolve_names",
    "submit",
    "submit_job",
]

#: The statuses that count against a user's share: the job is waiting or holds a worker.
ACTIVE_STATUSES = ("queued", "running")


def new_generation_id() -> str:
    return uuid.uuid4().hex


def _backends(create: GenerationCreate, settings: Settings) -> BackendSettings:
    """The deployment's backends with the request's choice of names on top."""
    defaults = settings.default_backends()
    choice = create.settings.backends
    if choice is None:
        return defaults
    update: dict[str, object] = {}
    if choice.llm is not None:
        update["llm"] = defaults.llm.model_copy(update={"backend": choice.llm})
    if choice.generator is not None:
        update["generator"] = defaults.generator.model_copy(update={"backend": choice.generator})
    if choice.scorers is not None:
        update["scoring"] = defaults.scoring.model_copy(update={"scorers": tuple(choice.scorers)})
    return defaults.model_copy(update=update)


def job_spec(
    create: GenerationCreate,
    settings: Settings,
    reference_path: str | None,
    character_references: dict[str, list[ReferenceImage]] | None = None,
) -> JobSpec:
    return JobSpec(
        concept=create.prompt,
        target_duration_s=create.target_duration,
        num_scenes=create.num_scenes,
        scenes=create.scenes,
        reference_path=reference_path,
        settings=create.settings.generation_settings(),
        backends=_backends(create, settings),
        preset=create.preset,
        characters=create.characters or [],
        scene_characters=create.scene_characters,
        character_references=character_references or {},
    )


def resolve_names(
    engine: Engine, settings: Settings, user_id: int, create: GenerationCreate
) -> tuple[GenerationCreate, int | None, dict[str, list[ReferenceImage]]]:
    """The request with its preset applied, the preset's id, and the references of the
    characters it names; a 422 naming each unknown preset or character (another user's
    included). Reads only, so a refusal here changes nothing stored."""
    errors: list[dict[str, object]] = []
    preset_id = None
    references: dict[str, list[ReferenceImage]] = {}
    with Session(engine) as session:
        try:
            create, preset_id = presets.apply_preset(session=session, user_id=user_id, create=create)
        except (presets.PresetNotFoundError, ValueError) as exc:
            errors.append({"loc": ["body", "preset"], "msg": str(exc), "type": "unknown_preset"})
        named: list[tuple[str, int, int | None, str]] = [
            ("characters", i, None, cid) for i, cid in enumerate(create.characters or [])
        ]
        named += [
            ("scene_characters", i, j, cid)
            for i, ids in enumerate(create.scene_characters or [])
            for j, cid in enumerate(ids)
        ]
        if named:
            try:
                references = characters.resolve_character_references(
                    session=session, user_id=user_id, character_ids=[n[3] for n in named], data_dir=settings.data_dir
                )
            except characters.CharacterNotFoundError as exc:
                for field, i, j, cid in named:
                    if cid in exc.missing:
                        loc = ["body", field, i] if j is None else ["body", field, i, j]
                        errors.append(
                            {"loc": loc, "msg": f"no character {cid!r} for this user", "type": "unknown_character"}
                        )
    if errors:
        raise RequestValidationError(errors)
    return create, preset_id, references


class UserJobsFullError(QueueFullError):
    """The user already has ``max_jobs_per_user`` jobs queued or running (fair admission);
    a ``QueueFullError``, so every caller that answers a full queue answers this too."""

    limit = "max_jobs_per_user"

    def __init__(self, active: int, cap: int, retry_after_s: int) -> None:
        RuntimeError.__init__(
            self,
            f"you have {active} jobs queued or running, the most one user may have "
            f"(max_jobs_per_user = {cap}); retry after {retry_after_s} s, or when one of them finishes",
        )
        self.active = active
        self.cap = cap
        self.retry_after_s = retry_after_s


def active_jobs(session: Session, user_id: int) -> int:
    """The user's queued plus running jobs, from the database (so every API process agrees)."""
    query = (
        select(func.count())
        .select_from(Generation)
        .where(Generation.user_id == user_id, col(Generation.status).in_(ACTIVE_STATUSES))
    )
    return int(session.exec(query).one())


def check_user_share(engine: Engine, settings: Settings, user_id: int) -> None:
    """``UserJobsFullError`` when the user has no room left; reads only."""
    with Session(engine) as session:
        active = active_jobs(session, user_id)
    if active >= settings.max_jobs_per_user:
        raise UserJobsFullError(active, settings.max_jobs_per_user, settings.retry_after_s)


async def submit(
    *,
    runner: JobQueue,
    engine: Engine,
    settings: Settings,
    user_id: int,
    create: GenerationCreate,
    base_url: str,
    image: Image.Image | None = None,
    spec_fields: dict[str, Any] | None = None,
) -> GenerationAccepted:
    """Store and queue one storyboard; ``QueueFullError`` (``UserJobsFullError`` for the
    user's own cap) when there is no room.

    ``spec_fields`` sets JobSpec fields a request body cannot (a storyboard derived from
    another, as the assistant's refine: ``plan``, ``reuse_from``, ``keep_scenes``, ...).
    """
    preset_id: int | None = None
    character_references: dict[str, list[ReferenceImage]] = {}
    if create.preset is not None or create.characters or create.scene_characters:
        create, preset_id, character_references = await asyncio.to_thread(
            resolve_names, engine, settings, user_id, create
        )

    async def build(generation_id: str) -> JobSpec:
        reference_path = None
        if image is not None:
            reference_path = str(await asyncio.to_thread(store_reference, image, settings.upload_dir, generation_id))
        spec = job_spec(create, settings, reference_path, character_references)
        if spec_fields:
            spec = JobSpec.model_validate({**spec.model_dump(), **spec_fields})
        return spec

    def undo(generation_id: str) -> None:
        if image is not None:
            discard_upload(settings.upload_dir, generation_id)

    return await submit_job(
        runner=runner,
        engine=engine,
        settings=settings,
        user_id=user_id,
        concept=create.prompt,
        build=build,
        base_url=base_url,
        undo=undo,
        preset_id=preset_id,
    )


async def submit_job(
    *,
    runner: JobQueue,
    engine: Engine,
    settings: Settings,
    user_id: int,
    concept: str,
    build: Callable[[str], Awaitable[JobSpec]],
    base_url: str,
    generation_id: str | None = None,
    undo: Callable[[str], None] = lambda generation_id: None,
    preset_id: int | None = None,
) -> GenerationAccepted:
    """Admit, store and queue one job of any kind; the steps every submission shares.

    ``build`` makes the job's spec once its id is known (an upload is stored under the id);
    ``undo`` removes what ``build`` wrote when the job is refused after all.
    """
    await asyncio.to_thread(check_user_share, engine, settings, user_id)
    await asyncio.to_thread(check_storage_quota, engine, settings, user_id)
    runner.reserve()
    generation_id = generation_id or new_generation_id()
    try:
        spec = await build(generation_id)

        def store() -> None:
            with Session(engine) as session:
                crud.create_generation(
                    session=session,
                    generation_id=generation_id,
                    user_id=user_id,
                    concept=concept,
                    request=spec.model_dump(mode="json"),
                )
                # Counted again with this job stored: of two concurrent submissions that both
                # passed the first check, the one that overshoots the cap takes itself back.
                active = active_jobs(session, user_id)
                if active > settings.max_jobs_per_user:
                    row = session.get(Generation, generation_id)
                    if row is not None:
                        session.delete(row)
                        session.commit()
                    raise UserJobsFullError(active - 1, settings.max_jobs_per_user, settings.retry_after_s)
                if preset_id is not None:
                    preset_crud.record_use(session=session, preset_id=preset_id)

        await asyncio.to_thread(store)
    except BaseException:
        runner.release()
        undo(generation_id)
        raise
    await runner.enqueue(generation_id, user_id=user_id)  # its owner decides its turn (round-robin)
    links = generation_links(base_url, generation_id)
    return GenerationAccepted(generation_id=generation_id, status_url=links["status"], events_url=links["events"])
