"""Accepting a storyboard: reserve a queue slot, store the job, queue it.

The order matters for "a rejected request changes nothing stored": the slot is reserved
first (a full queue refuses before anything is written), and a failure after that removes
what was written and gives the slot back.
"""

from __future__ import annotations

import asyncio
import uuid

from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api import crud
from api.jobs import JobRunner
from api.models import GenerationAccepted, GenerationCreate
from api.pipeline import JobSpec
from api.settings import Settings
from api.status import generation_links
from api.uploads import discard_upload, store_reference
from graph.context import BackendSettings

__all__ = ["job_spec", "new_generation_id", "submit"]


def new_generation_id() -> str:
    return uuid.uuid4().hex


def _backends(create: GenerationCreate, settings: Settings) -> BackendSettings:
    defaults = settings.default_backends()
    choice = create.settings.backends
    if choice is None:
        return defaults
    update: dict[str, object] = {}
    if choice.llm is not None:
        update["llm"] = choice.llm
    if choice.generator is not None:
        update["generator"] = choice.generator
    if choice.scorers is not None:
        update["scorers"] = tuple(choice.scorers)
    return BackendSettings(**{**defaults.model_dump(), **update})


def job_spec(create: GenerationCreate, settings: Settings, reference_path: str | None) -> JobSpec:
    return JobSpec(
        concept=create.prompt,
        target_duration_s=create.target_duration,
        num_scenes=create.num_scenes,
        scenes=create.scenes,
        reference_path=reference_path,
        settings=create.settings.generation_settings(),
        backends=_backends(create, settings),
    )


async def submit(
    *,
    runner: JobRunner,
    engine: Engine,
    settings: Settings,
    user_id: int,
    create: GenerationCreate,
    base_url: str,
    image: Image.Image | None = None,
) -> GenerationAccepted:
    """Store and queue one storyboard; ``QueueFullError`` when there is no room."""
    runner.reserve()
    generation_id = new_generation_id()
    try:
        reference_path = None
        if image is not None:
            reference_path = str(await asyncio.to_thread(store_reference, image, settings.upload_dir, generation_id))
        spec = job_spec(create, settings, reference_path)

        def store() -> None:
            with Session(engine) as session:
                crud.create_generation(
                    session=session,
                    generation_id=generation_id,
                    user_id=user_id,
                    concept=create.prompt,
                    request=spec.model_dump(mode="json"),
                )

        await asyncio.to_thread(store)
    except BaseException:
        runner.release()
        if image is not None:
            discard_upload(settings.upload_dir, generation_id)
        raise
    await runner.enqueue(generation_id)
    links = generation_links(base_url, generation_id)
    return GenerationAccepted(generation_id=generation_id, status_url=links["status"], events_url=links["events"])
