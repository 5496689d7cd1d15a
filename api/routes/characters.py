"""Characters (seed 003): CRUD, reference uploads, the gallery, and the smart-image endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from sqlmodel import Session, col, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from imageforge.api import characters as service
from imageforge.api.deps import CurrentUser, SessionDep, SettingsDep, StreamUser
from imageforge.api.models import Message
from imageforge.api.models_characters import (
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
    SmartImageData,
    SmartImageError,
    SmartImageErrorDetails,
    SmartImageRequest,
    SmartImageSuccess,
    TurnaroundAngle,
    clean_tags,
)
from imageforge.api.settings import Settings
from imageforge.api.uploads import receive_image

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/characters", tags=["characters"])

CharacterId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
ItemId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
_NOT_FOUND = {404: {"description": "No such character (or item) for this user."}}
_UPLOAD_REFUSED = {
    413: {"description": "The upload is too large (bytes or pixels)."},
    415: {"description": "The upload is not a PNG, JPEG or WebP image."},
}
_IMAGE = {200: {"content": {"image/png": {}}, "description": "The PNG image."}, **_NOT_FOUND}


# Shapes ------------------------------------------------------------------------------------
def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _reference_public(base: str, reference: CharacterReference) -> ReferencePublic:
    return ReferencePublic(
        id=reference.id,
        kind=reference.kind,  # type: ignore[arg-type]
        angle=reference.angle,  # type: ignore[arg-type]
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
        reference_type=image.reference_type,  # type: ignore[arg-type]
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
    character = service.get_character(session=session, character_id=character_id, user_id=user_id)
    if character is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Character {character_id!r} not found.")
    return character


def _detail(session: Session, base: str, character: Character) -> CharacterPublic:
    references = service.list_references(session=session, character_id=character.id)
    gallery = service.list_gallery(session=session, character_id=character.id)
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
    rows, count = service.list_characters(session=session, user_id=user.id, skip=skip, limit=limit)  # type: ignore[arg-type]
    ids = [c.id for c in rows]
    references: dict[str, list[CharacterReference]] = {cid: [] for cid in ids}
    counts: dict[str, int] = {}
    if ids:
        for reference in session.exec(
            select(CharacterReference)
            .where(col(CharacterReference.character_id).in_(ids))
            .order_by(col(CharacterReference.created_at), col(CharacterReference.id))
        ).all():
            references[reference.character_id].append(reference)
        for image in session.exec(
            select(GalleryImage.character_id).where(col(GalleryImage.character_id).in_(ids))
        ).all():
            counts[image] = counts.get(image, 0) + 1
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
    character = service.create_character(session=session, user_id=user.id, create=body)  # type: ignore[arg-type]
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
    character = service.update_character(session=session, character=character, update=body)
    return _detail(session, _root(request), character)


@router.delete("/{character_id}", response_model=Message, responses=_NOT_FOUND)
def delete_character(
    character_id: CharacterId, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> Message:
    """The character, its references and its gallery files. Traces of its runs stay."""
    character = _owned(session, character_id, user.id)  # type: ignore[arg-type]
    service.delete_character(session=session, character=character, data_dir=settings.data_dir)
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
            reference = service.add_reference(
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
    rows = service.list_references(session=session, character_id=character_id)
    base = _root(request)
    return ReferencesPublic(data=[_reference_public(base, r) for r in rows], count=len(rows))


def _owned_reference(session: Session, character_id: str, reference_id: str, user_id: int) -> CharacterReference:
    _owned(session, character_id, user_id)
    reference = session.get(CharacterReference, reference_id)
    if reference is None or reference.character_id != character_id:
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
    return _file(service.reference_path(settings.data_dir, reference))


@router.delete("/{character_id}/references/{reference_id}", response_model=Message, responses=_NOT_FOUND)
def delete_reference(
    character_id: CharacterId,
    reference_id: ItemId,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Message:
    reference = _owned_reference(session, character_id, reference_id, user.id)  # type: ignore[arg-type]
    service.delete_reference(session=session, reference=reference, data_dir=settings.data_dir)
    return Message(message=f"Reference {reference_id!r} deleted.")


# Gallery -----------------------------------------------------------------------------------
@router.get("/{character_id}/gallery", response_model=GalleryPublic, responses=_NOT_FOUND)
def list_gallery(character_id: CharacterId, request: Request, session: SessionDep, user: CurrentUser) -> GalleryPublic:
    """Smart images that passed validation, newest first, with their scores."""
    _owned(session, character_id, user.id)  # type: ignore[arg-type]
    rows = service.list_gallery(session=session, character_id=character_id)
    base = _root(request)
    return GalleryPublic(data=[_gallery_public(base, g) for g in rows], count=len(rows))


def _owned_image(session: Session, character_id: str, image_id: str, user_id: int) -> GalleryImage:
    _owned(session, character_id, user_id)
    image = session.get(GalleryImage, image_id)
    if image is None or image.character_id != character_id:
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
    return _file(service.gallery_path(settings.data_dir, image))


@router.delete("/{character_id}/gallery/{image_id}", response_model=Message, responses=_NOT_FOUND)
def delete_gallery_image(
    character_id: CharacterId,
    image_id: ItemId,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Message:
    image = _owned_image(session, character_id, image_id, user.id)  # type: ignore[arg-type]
    service.delete_gallery_image(session=session, image=image, data_dir=settings.data_dir)
    return Message(message=f"Gallery image {image_id!r} deleted.")


def _file(path: FilePath) -> FileResponse:
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "The image file is missing on the server.")
    return FileResponse(path, media_type="image/png")


# Smart image (seed 003) --------------------------------------------------------------------
def _seed_error(
    status_code: int, error: str, details: SmartImageErrorDetails | None = None, detail: Any = None
) -> JSONResponse:
    body = jsonable_encoder(SmartImageError(error=error, details=details or SmartImageErrorDetails(), detail=detail))
    if detail is None:
        body.pop("detail", None)
    return JSONResponse(body, status_code=status_code)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', '')}")
    return "Invalid Parameters: " + "; ".join(parts)


class SeedErrorRoute(APIRoute):
    """Answers a request that fails validation (or whose body does not parse) with seed 003's
    error body; a 422 still carries FastAPI's ``detail`` list, so clients of the other
    endpoints read it the same way."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = jsonable_encoder(exc.errors())
                reasons = sorted({str(e.get("loc", ["body"])[-1]) for e in errors})
                details = SmartImageErrorDetails(failureReasons=[f"Invalid parameter: {r}" for r in reasons])
                return _seed_error(422, _validation_message(errors), details, errors)
            except StarletteHTTPException as exc:  # FastAPI's answer to a body that does not parse
                if exc.status_code != status.HTTP_400_BAD_REQUEST:  # 401 keeps its usual shape
                    raise
                return _seed_error(400, f"Invalid Parameters: {exc.detail}")

        return route


def _services(app: Any, settings: Settings) -> Any:
    """The app's default backends; built here (once per process) when the app was started
    with an injected pipeline and so built none."""
    if app.state.services is not None:
        return app.state.services
    if getattr(app.state, "services_error", None):
        raise RuntimeError(f"the default backends failed to build: {app.state.services_error}")
    from imageforge.graph.services import build_services

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return build_services(settings.default_backends(), api_key=api_key)


def _attempt_details(outcome: service.SmartImageOutcome) -> SmartImageErrorDetails:
    error = outcome.result.error or {}
    return SmartImageErrorDetails.model_validate(error.get("details") or {})


def _validation_notes(quality: float, consistency: float | None, attempts: int) -> str:
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
    character_id: CharacterId,
    body: SmartImageRequest,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
) -> Response:
    """Seed 003: analyse the prompt, rank the character's references, generate, validate,
    retry with the next reference, and add the image that passes to the gallery."""
    app = request.app
    engine = app.state.engine
    user_id: int = user.id  # type: ignore[assignment]

    def load() -> tuple[Character, list[Any]] | None:
        with Session(engine) as session:
            character = service.get_character(session=session, character_id=character_id, user_id=user_id)
            if character is None:
                return None
            candidates = service.reference_candidates(
                service.list_references(session=session, character_id=character_id),
                service.list_gallery(session=session, character_id=character_id, limit=service.GALLERY_CANDIDATES),
                settings.data_dir,
            )
            return character, candidates

    loaded = await asyncio.to_thread(load)
    if loaded is None:
        return _seed_error(404, f"Character {character_id!r} not found")
    character, candidates = loaded
    if not candidates:
        return _seed_error(
            400,
            "No Reference Images: the character has no master reference, core references or gallery images; "
            f"upload one to /api/v1/characters/{character_id}/references",
            SmartImageErrorDetails(failureReasons=["No Reference Images"]),
        )
    name = body.characterName or character.name
    run_settings = service.smart_settings(
        max_retries=body.maxRetries,
        quality_threshold=body.qualityThreshold,
        consistency_threshold=body.consistencyThreshold,
        num_variations=body.numVariations,
        seed=body.seed,
    )
    backends = settings.default_backends()
    generation_id = service.smart_generation_id(character_id)
    try:
        services = await asyncio.to_thread(_services, app, settings)
        # On this loop, not a fresh one per request: cached async clients (an LLM's HTTP pool)
        # are bound to the loop that opened them. The graph's nodes run every model call and
        # image write in worker threads, so the loop only does the bookkeeping of one scene.
        outcome = await service.run_smart_image(
            generation_id=generation_id,
            character_name=name,
            description=character.description,
            prompt=body.prompt,
            style=body.style,
            candidates=candidates,
            settings=run_settings,
            backends=backends,
            services=services,
            trace_root=settings.trace_root,
        )
    except Exception as exc:  # a backend is down or broke: seed 003's "Service Unavailable"
        logger.exception("smart image %s failed", generation_id)
        return _seed_error(503, f"Service Unavailable: {type(exc).__name__}: {exc}")

    record = service.smart_request_record(
        character_id=character_id,
        body=body.model_dump(mode="json"),
        settings=run_settings,
        backends=backends,
    )

    def store() -> Any:
        with Session(engine) as session:
            return service.record_smart_image(
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
                trace_dir=settings.trace_root / generation_id,
            )

    try:
        image = await asyncio.to_thread(store)
    except service.CharacterNotFoundError:
        return _seed_error(404, f"Character {character_id!r} not found (deleted during generation)")
    if image is None:
        details = _attempt_details(outcome)
        return _seed_error(
            400,
            f"All Attempts Failed: {(outcome.result.error or {}).get('error', '')}".rstrip(": "),
            details,
        )
    winner = outcome.result.winner
    assert winner is not None, "a passed run has a winner"
    attempts = len(outcome.result.attempts)
    data = SmartImageData(
        characterId=character_id,
        characterName=name,
        imageId=image.id,
        publicUrl=f"{_root(request)}/api/v1/characters/{character_id}/gallery/{image.id}/image",
        selectedReferenceId=image.reference_id,
        selectedReferenceType=image.reference_type,  # type: ignore[arg-type]
        qualityScore=winner.overall,
        consistencyScore=winner.consistency,
        attempts=attempts,
        generationTime=outcome.elapsed_ms,
        validationNotes=_validation_notes(winner.overall, winner.consistency, attempts),
        filename=image.filename,
        generationId=generation_id,
        promptAnalysis=outcome.analysis.model_dump(),
    )
    message = f"Smart image generated successfully in {attempts} attempt{'s' if attempts > 1 else ''}"
    return JSONResponse(jsonable_encoder(SmartImageSuccess(message=message, data=data)))


router.add_api_route(
    "/{character_id}/generate-smart-image",
    generate_smart_image,
    methods=["POST"],
    response_model=SmartImageSuccess,
    route_class_override=SeedErrorRoute,
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
        503: {"model": SmartImageError, "description": "Service Unavailable: a backend failed."},
    },
)
