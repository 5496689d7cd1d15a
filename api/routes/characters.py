"""Characters (seed 003): CRUD, reference uploads, the gallery, and the smart-image endpoint.

The smart-image endpoint answers errors in seed 003's shape: the service raises
``SmartImageFailure`` and the app's exception handlers (``api.main``) also give request
validation errors of this route that shape."""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, UploadFile, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from sqlmodel import Session

from imageforge.api.crud import character as crud
from imageforge.api.deps import CurrentUser, RunnerDep, SessionDep, SettingsDep, StreamUser
from imageforge.api.models.character import (
    Character,
    CharacterCreate,
    CharacterPublic,
    CharacterReference,
    CharactersPublic,
    CharacterUpdate,
    GalleryImage,
    GalleryImagePublic,
    GalleryPublic,
    ReferencePublic,
    ReferenceRole,
    ReferencesPublic,
    SmartImageError,
    SmartImageRequest,
    SmartImageSuccess,
    TurnaroundAngle,
    clean_tags,
)
from imageforge.api.models.operations import Message
from imageforge.api.routes import Responses
from imageforge.api.services import characters as files
from imageforge.api.services import smart_images
from imageforge.api.services.quota import check_storage_quota
from imageforge.api.services.uploads import receive_image

__all__ = ["generate_smart_image", "router"]

router = APIRouter(prefix="/api/v1/characters", tags=["characters"])

CharacterId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
ItemId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
_NOT_FOUND: Responses = {404: {"description": "No such character (or item) for this user."}}
_UPLOAD_REFUSED: Responses = {
    413: {"description": "The upload is too large (bytes or pixels)."},
    415: {"description": "The upload is not a PNG, JPEG or WebP image."},
}
_IMAGE: Responses = {
    200: {"content": {"image/png": {}}, "description": "The PNG image."},
    **_NOT_FOUND,
}


# Shapes ------------------------------------------------------------------------------------
def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _reference_public(base: str, reference: CharacterReference) -> ReferencePublic:
    return ReferencePublic(
        id=reference.id,
        kind=reference.kind,
        angle=reference.angle,
        shot_type=reference.shot_type,
        keywords=list(reference.keywords),
        width=reference.width,
        height=reference.height,
        url=f"{base}/api/v1/characters/{reference.character_id}/references/{reference.id}/image",
        created_at=reference.created_at,
    )


def _gallery_public(base: str, image: GalleryImage) -> GalleryImagePublic:
    return GalleryImagePublic(
        id=image.id,
        url=f"{base}/api/v1/characters/{image.character_id}/gallery/{image.id}/image",
        filename=image.filename,
        prompt=image.prompt,
        enhanced_prompt=image.enhanced_prompt,
        style=image.style,
        tags=list(image.tags),
        quality_score=image.quality_score,
        consistency_score=image.consistency_score,
        reference_id=image.reference_id,
        reference_type=image.reference_type,
        generation_id=image.generation_id,
        trace_url=f"{base}/traces/{image.generation_id}",
        attempts=image.attempts,
        created_at=image.created_at,
    )


def _character_public(
    base: str,
    character: Character,
    references: list[CharacterReference],
    gallery: list[GalleryImage],
    gallery_count: int,
) -> CharacterPublic:
    master = next((r for r in references if r.kind == "master"), None)
    return CharacterPublic(
        id=character.id,
        name=character.name,
        description=character.description,
        tags=list(character.tags),
        master=None if master is None else _reference_public(base, master),
        core_references=[_reference_public(base, r) for r in references if r.kind == "core"],
        gallery=[_gallery_public(base, g) for g in gallery],
        gallery_count=gallery_count,
        created_at=character.created_at,
        updated_at=character.updated_at,
    )


def _owned(session: Session, character_id: str, user_id: int) -> Character:
    character = crud.get_character(session=session, character_id=character_id, user_id=user_id)
    if character is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Character {character_id!r} not found.")
    return character


def _detail(session: Session, base: str, character: Character) -> CharacterPublic:
    references = crud.list_references(session=session, character_id=character.id)
    gallery = crud.list_gallery(session=session, character_id=character.id)
    return _character_public(base, character, references, gallery, len(gallery))


# CRUD --------------------------------------------------------------------------------------
@router.get("", response_model=CharactersPublic)
def list_characters(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CharactersPublic:
    """The caller's characters, newest first, with their references (galleries by count)."""
    rows, count = crud.list_characters(session=session, user_id=user.id, skip=skip, limit=limit)  # type: ignore[arg-type]
    ids = [c.id for c in rows]
    references = crud.references_of(session=session, character_ids=ids)
    counts = crud.count_gallery(session=session, character_ids=ids)
    base = _root(request)
    return CharactersPublic(
        data=[_character_public(base, c, references[c.id], [], counts.get(c.id, 0)) for c in rows],
        count=count,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CharacterPublic)
def create_character(
    body: CharacterCreate, request: Request, session: SessionDep, user: CurrentUser
) -> CharacterPublic:
    """A new character without images; upload its master and core references next."""
    character = crud.create_character(session=session, user_id=user.id, create=body)  # type: ignore[arg-type]
    return _character_public(_root(request), character, [], [], 0)


@router.get("/{character_id}", response_model=CharacterPublic, responses=_NOT_FOUND)
def get_character(
    character_id: CharacterId, request: Request, session: SessionDep, user: CurrentUser
) -> CharacterPublic:
    """The character with its master, core references and whole gallery (newest first)."""
    return _detail(session, _root(request), _owned(session, character_id, user.id))  # type: ignore[arg-type]


@router.patch("/{character_id}", response_model=CharacterPublic, responses=_NOT_FOUND)
def update_character(
    character_id: CharacterId,
    body: CharacterUpdate,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
) -> CharacterPublic:
    """Change the name, description or tags; fields not sent stay as they are."""
    character = _owned(session, character_id, user.id)  # type: ignore[arg-type]
    character = crud.update_character(session=session, character=character, update=body)
    return _detail(session, _root(request), character)


@router.delete("/{character_id}", response_model=Message, responses=_NOT_FOUND)
def delete_character(
    character_id: CharacterId, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> Message:
    """The character, its references and its gallery files. Traces of its runs stay."""
    character = _owned(session, character_id, user.id)  # type: ignore[arg-type]
    files.delete_character(session=session, character=character, data_dir=settings.data_dir)
    return Message(message=f"Character {character_id!r} deleted.")


# References --------------------------------------------------------------------------------
@router.post(
    "/{character_id}/references",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferencePublic,
    responses={**_NOT_FOUND, **_UPLOAD_REFUSED},
)
async def upload_reference(
    character_id: CharacterId,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP.")],
    kind: Annotated[
        ReferenceRole, Form(description="master (one per character; replaces the old one) or core.")
    ] = "core",
    angle: Annotated[
        TurnaroundAngle | None, Form(description="Turnaround angle; required for a core reference.")
    ] = None,
    shot_type: Annotated[str, Form(max_length=100, description="e.g. close-up, full body.")] = "",
    keywords: Annotated[str, Form(max_length=500, description="Comma-separated words for reference matching.")] = "",
) -> ReferencePublic:
    """Add a master or core (turnaround) reference, validated like every upload."""
    if kind == "core" and angle is None:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "angle"],
                    "msg": "a core reference needs its turnaround `angle` (front, side, back, 45-degree)",
                    "type": "missing",
                }
            ]
        )
    try:
        words = clean_tags([w for w in keywords.split(",") if w.strip()], "keywords") or []
    except ValueError as exc:
        raise RequestValidationError([{"loc": ["body", "keywords"], "msg": str(exc), "type": "value_error"}]) from exc
    engine = request.app.state.engine

    def owned() -> None:
        with Session(engine) as session:
            _owned(session, character_id, user.id)  # type: ignore[arg-type]

    await asyncio.to_thread(owned)
    await asyncio.to_thread(check_storage_quota, engine, settings, user.id)  # type: ignore[arg-type]
    picture = await receive_image(
        image,
        field="image",
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        spool_dir=settings.upload_dir,
    )

    def store() -> ReferencePublic:
        with Session(engine) as session:
            character = _owned(session, character_id, user.id)  # type: ignore[arg-type]
            reference = files.add_reference(
                session=session,
                character=character,
                image=picture,
                kind=kind,
                angle=angle,
                shot_type=shot_type.strip(),
                keywords=words,
                data_dir=settings.data_dir,
            )
            return _reference_public(_root(request), reference)

    return await asyncio.to_thread(store)


@router.get("/{character_id}/references", response_model=ReferencesPublic, responses=_NOT_FOUND)
def list_references(
    character_id: CharacterId, request: Request, session: SessionDep, user: CurrentUser
) -> ReferencesPublic:
    """Master first, then the core references in upload order."""
    _owned(session, character_id, user.id)  # type: ignore[arg-type]
    rows = crud.list_references(session=session, character_id=character_id)
    base = _root(request)
    return ReferencesPublic(data=[_reference_public(base, r) for r in rows], count=len(rows))


def _owned_reference(session: Session, character_id: str, reference_id: str, user_id: int) -> CharacterReference:
    _owned(session, character_id, user_id)
    reference = crud.get_reference(session=session, character_id=character_id, reference_id=reference_id)
    if reference is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Reference {reference_id!r} not found.")
    return reference


@router.get("/{character_id}/references/{reference_id}/image", response_class=FileResponse, responses=_IMAGE)
def reference_image(
    character_id: CharacterId,
    reference_id: ItemId,
    session: SessionDep,
    user: StreamUser,
    settings: SettingsDep,
) -> FileResponse:
    reference = _owned_reference(session, character_id, reference_id, user.id)  # type: ignore[arg-type]
    return _file(files.reference_path(settings.data_dir, reference))


@router.delete("/{character_id}/references/{reference_id}", response_model=Message, responses=_NOT_FOUND)
def delete_reference(
    character_id: CharacterId,
    reference_id: ItemId,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Message:
    reference = _owned_reference(session, character_id, reference_id, user.id)  # type: ignore[arg-type]
    files.delete_reference(session=session, reference=reference, data_dir=settings.data_dir)
    return Message(message=f"Reference {reference_id!r} deleted.")


# Gallery -----------------------------------------------------------------------------------
@router.get("/{character_id}/gallery", response_model=GalleryPublic, responses=_NOT_FOUND)
def list_gallery(character_id: CharacterId, request: Request, session: SessionDep, user: CurrentUser) -> GalleryPublic:
    """Smart images that passed validation, newest first, with their scores."""
    _owned(session, character_id, user.id)  # type: ignore[arg-type]
    rows = crud.list_gallery(session=session, character_id=character_id)
    base = _root(request)
    return GalleryPublic(data=[_gallery_public(base, g) for g in rows], count=len(rows))


def _owned_image(session: Session, character_id: str, image_id: str, user_id: int) -> GalleryImage:
    _owned(session, character_id, user_id)
    image = crud.get_gallery_image(session=session, character_id=character_id, image_id=image_id)
    if image is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Gallery image {image_id!r} not found.")
    return image


@router.get("/{character_id}/gallery/{image_id}/image", response_class=FileResponse, responses=_IMAGE)
def gallery_image(
    character_id: CharacterId,
    image_id: ItemId,
    session: SessionDep,
    user: StreamUser,
    settings: SettingsDep,
) -> FileResponse:
    image = _owned_image(session, character_id, image_id, user.id)  # type: ignore[arg-type]
    return _file(files.gallery_path(settings.data_dir, image))


@router.delete("/{character_id}/gallery/{image_id}", response_model=Message, responses=_NOT_FOUND)
def delete_gallery_image(
    character_id: CharacterId,
    image_id: ItemId,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Message:
    image = _owned_image(session, character_id, image_id, user.id)  # type: ignore[arg-type]
    files.delete_gallery_image(session=session, image=image, data_dir=settings.data_dir)
    return Message(message=f"Gallery image {image_id!r} deleted.")


def _file(path: FilePath) -> FileResponse:
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "The image file is missing on the server.")
    return FileResponse(path, media_type="image/png")


# Smart image (seed 003) --------------------------------------------------------------------
@router.post(
    "/{character_id}/generate-smart-image",
    response_model=SmartImageSuccess,
    summary="Generate a smart image for a character (seed 003)",
    responses={
        400: {
            "model": SmartImageError,
            "description": "No Reference Images, or All Attempts Failed (with per-attempt details).",
        },
        404: {"model": SmartImageError, "description": "No such character for this user."},
        422: {
            "model": SmartImageError,
            "description": "Invalid Parameters: a field is missing or out of range.",
        },
        429: {
            "model": SmartImageError,
            "description": "Too Many Requests: the job queue is full, or this user has max_jobs_per_user "
            "jobs queued or running; see Retry-After.",
        },
        503: {
            "model": SmartImageError,
            "description": "Service Unavailable: a backend failed, or the job was cancelled.",
        },
        504: {
            "model": SmartImageError,
            "description": "Gateway Timeout: the job outlived IMAGEFORGE_SMART_IMAGE_TIMEOUT_S and was cancelled.",
        },
    },
)
async def generate_smart_image(
    character_id: CharacterId,
    body: SmartImageRequest,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    runner: RunnerDep,
) -> SmartImageSuccess | JSONResponse:
    """Seed 003: analyse the prompt, rank the character's references, generate, validate,
    retry with the next reference, and add the image that passes to the gallery. Runs as a
    job through the queue; the request waits for it (at most IMAGEFORGE_SMART_IMAGE_TIMEOUT_S)."""
    try:
        return await smart_images.generate_smart_image(
            runner=runner,
            engine=request.app.state.engine,
            settings=settings,
            user_id=user.id,  # type: ignore[arg-type]
            character_id=character_id,
            body=body,
            base_url=_root(request),
            disconnected=request.is_disconnected,
        )
    except smart_images.SmartImageFailure as exc:
        if not exc.headers:
            raise  # the app's handler answers it in seed 003's shape
        # A 429 carries Retry-After, which the app's handler does not pass on.
        error = SmartImageError(error=exc.error, details=exc.details)
        return JSONResponse(
            jsonable_encoder(error, exclude={"detail"}), status_code=exc.status_code, headers=exc.headers
        )
