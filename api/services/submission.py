"""Accepting a storyboard: reserve a queue slot, store the job, queue it.

The order matters for "a rejected request changes nothing stored": the slot is reserved
first (a full queue refuses before anything is written), and a failure after that removes
what was written and gives the slot back.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi.exceptions import RequestValidationError
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.config import Settings
from imageforge.api.crud import generation as crud
from imageforge.api.crud import preset as preset_crud
from imageforge.api.models.generation import GenerationAccepted, GenerationCreate, JobSpec
from imageforge.api.services import characters, presets
from imageforge.api.services.jobs import JobRunner
from imageforge.api.services.status import generation_links
from imageforge.api.services.uploads import discard_upload, store_reference
from imageforge.graph.context import BackendSettings
from imageforge.tools.schemas import ReferenceImage

__all__ = ["job_spec", "new_generation_id", "resolve_names", "submit"]


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


async def submit(
    *,
    runner: JobRunner,
    engine: Engine,
    settings: Settings,
    user_id: int,
    create: GenerationCreate,
    base_url: str,
    image: Image.Image | None = None,
    spec_fields: dict[str, Any] | None = None,
) -> GenerationAccepted:
    """Store and queue one storyboard; ``QueueFullError`` when there is no room.

    ``spec_fields`` sets JobSpec fields a request body cannot (a storyboard derived from
    another, as the assistant's refine: ``plan``, ``reuse_from``, ``keep_scenes``, ...).
    """
    preset_id: int | None = None
    character_references: dict[str, list[ReferenceImage]] = {}
    if create.preset is not None or create.characters or create.scene_characters:
        create, preset_id, character_references = await asyncio.to_thread(
            resolve_names, engine, settings, user_id, create
        )
    runner.reserve()
    generation_id = new_generation_id()
    try:
        reference_path = None
        if image is not None:
            reference_path = str(await asyncio.to_thread(store_reference, image, settings.upload_dir, generation_id))
        spec = job_spec(create, settings, reference_path, character_references)
        if spec_fields:
            spec = JobSpec.model_validate({**spec.model_dump(), **spec_fields})

        def store() -> None:
            with Session(engine) as session:
                crud.create_generation(
                    session=session,
                    generation_id=generation_id,
                    user_id=user_id,
                    concept=create.prompt,
                    request=spec.model_dump(mode="json"),
                )
                if preset_id is not None:
                    preset_crud.record_use(session=session, preset_id=preset_id)

        await asyncio.to_thread(store)
    except BaseException:
        runner.release()
        if image is not None:
            discard_upload(settings.upload_dir, generation_id)
        raise
    await runner.enqueue(generation_id)
    links = generation_links(base_url, generation_id)
    return GenerationAccepted(generation_id=generation_id, status_url=links["status"], events_url=links["events"])
