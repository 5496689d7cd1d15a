"""Submitting storyboards: JSON, or multipart with a reference image."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from imageforge.api.deps import CurrentUser, RunnerDep, SettingsDep
from imageforge.api.models.generation import GenerationAccepted, GenerationCreate
from imageforge.api.routes import Responses
from imageforge.api.services.submission import submit
from imageforge.api.services.uploads import receive_image
from imageforge.graph.context import AspectRatio

router = APIRouter(prefix="/api", tags=["generate"])

_ACCEPTED: Responses = {
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The upload is too large (bytes or pixels)."},
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"description": "The upload is not a PNG, JPEG or WebP image."},
    status.HTTP_429_TOO_MANY_REQUESTS: {"description": "The queue is full; see Retry-After."},
}


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GenerationAccepted,
    responses={429: _ACCEPTED[429]},
)
async def generate(
    body: GenerationCreate, user: CurrentUser, runner: RunnerDep, settings: SettingsDep, request: Request
) -> GenerationAccepted:
    """Queue a storyboard; the answer comes at once with the URLs to follow it."""
    return await submit(
        runner=runner,
        engine=request.app.state.engine,
        settings=settings,
        user_id=user.id,  # type: ignore[arg-type]
        create=body,
        base_url=str(request.base_url),
    )


@router.post(
    "/generate-with-image", status_code=status.HTTP_202_ACCEPTED, response_model=GenerationAccepted, responses=_ACCEPTED
)
async def generate_with_image(
    request: Request,
    user: CurrentUser,
    runner: RunnerDep,
    settings: SettingsDep,
    prompt: Annotated[str, Form(min_length=1, max_length=2000)],
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP: scene 1's reference.")],
    target_duration: Annotated[float | None, Form(gt=0, le=600)] = None,
    num_scenes: Annotated[int | None, Form(ge=1, le=20)] = None,
    scenes: Annotated[list[str] | None, Form(description="Explicit scene prompts (repeat the field).")] = None,
    num_variations: Annotated[int | None, Form()] = None,
    max_enhancement_iterations: Annotated[int | None, Form()] = None,
    approval_threshold: Annotated[float | None, Form()] = None,
    quality_threshold: Annotated[float | None, Form()] = None,
    consistency_threshold: Annotated[float | None, Form()] = None,
    max_retries: Annotated[int | None, Form()] = None,
    strict: Annotated[bool | None, Form()] = None,
    seed: Annotated[int | None, Form()] = None,
    aspect_ratio: Annotated[AspectRatio | None, Form()] = None,
    resolution: Annotated[int | None, Form()] = None,
    llm: Annotated[str | None, Form(description="Backend name: auto, heuristic or openai.")] = None,
    generator: Annotated[str | None, Form(description="Backend name: auto, sketch, diffusers or openai.")] = None,
    preset: Annotated[
        str | None, Form(description="A saved preset's name: the base the other settings override.")
    ] = None,
    characters: Annotated[
        list[str] | None, Form(description="Character ids shown in every scene (repeat the field).")
    ] = None,
) -> GenerationAccepted:
    """The same as /api/generate, flattened into form fields, plus the user's image."""
    options: dict[str, Any] = {
        name: value
        for name, value in {
            "num_variations": num_variations,
            "max_enhancement_iterations": max_enhancement_iterations,
            "approval_threshold": approval_threshold,
            "quality_threshold": quality_threshold,
            "consistency_threshold": consistency_threshold,
            "max_retries": max_retries,
            "strict": strict,
            "seed": seed,
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
        }.items()
        if value is not None
    }
    backends = {name: value for name, value in {"llm": llm, "generator": generator}.items() if value is not None}
    if backends:
        options["backends"] = backends
    fields: dict[str, Any] = {"prompt": prompt, "settings": options}
    for name, value in (
        ("target_duration", target_duration),
        ("num_scenes", num_scenes),
        ("scenes", scenes),
        ("preset", preset),
        ("characters", characters),
    ):
        if value is not None:
            fields[name] = value
    try:
        body = GenerationCreate.model_validate(fields)
    except ValidationError as exc:
        # Report the form field's own name: settings.num_variations arrived as num_variations.
        errors = []
        for error in exc.errors(include_url=False):
            loc = [part for part in error["loc"] if part not in ("settings", "backends")]
            errors.append({**error, "loc": ["body", *loc], "ctx": {k: str(v) for k, v in error.get("ctx", {}).items()}})
        raise RequestValidationError(errors) from exc
    picture = await receive_image(
        image,
        field="image",
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        spool_dir=settings.upload_dir,
    )
    return await submit(
        runner=runner,
        engine=request.app.state.engine,
        settings=settings,
        user_id=user.id,  # type: ignore[arg-type]
        create=body,
        base_url=str(request.base_url),
        image=picture,
    )
