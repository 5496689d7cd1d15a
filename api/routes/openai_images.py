"""OpenAI's images API on ImageForge: /v1/images/generations and /v1/images/edits.

Point the official client here: ``OpenAI(base_url="http://host:8000/v1", api_key=<token>)``.
The mapping of OpenAI's fields and the error shape are described in ``api.services.openai_compat``;
errors are answered in OpenAI's shape by the app's exception handlers (``api.main``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import ValidationError

from imageforge.api.deps import CurrentUser, ImagesSettingsDep, RunnerDep, SettingsDep
from imageforge.api.routes import Responses
from imageforge.api.services.openai_compat import (
    ImageEditRequest,
    ImageGenerationRequest,
    ImagesResponse,
    OpenAIError,
    OpenAIErrorResponse,
    Quality,
    ResponseFormat,
    Style,
    run_images,
    validation_error,
)
from imageforge.api.services.uploads import UploadError, receive_image

router = APIRouter(prefix="/v1/images", tags=["openai"])

_ERRORS: Responses = {
    400: {
        "model": OpenAIErrorResponse,
        "description": "Invalid input; `error.param` names the field.",
    },
    401: {
        "model": OpenAIErrorResponse,
        "description": "Missing or invalid API key (the service's bearer token).",
    },
    429: {
        "model": OpenAIErrorResponse,
        "description": "The job queue is full, or this user already has max_jobs_per_user jobs; see Retry-After.",
    },
    500: {"model": OpenAIErrorResponse, "description": "The generation failed or was cancelled."},
    504: {
        "model": OpenAIErrorResponse,
        "description": "The generation outlived the timeout and was cancelled.",
    },
}


@router.post(
    "/generations",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
)
async def create_images(
    body: ImageGenerationRequest,
    user: CurrentUser,
    runner: RunnerDep,
    settings: SettingsDep,
    images: ImagesSettingsDep,
    request: Request,
) -> ImagesResponse:
    """Generate images from a prompt: the enhancement loop and best-of-N, answered in OpenAI's shape."""
    return await run_images(
        body=body,
        request=request,
        runner=runner,
        settings=settings,
        images=images,
        user_id=user.id,  # type: ignore[arg-type]
    )


@router.post("/edits", response_model=ImagesResponse, response_model_exclude_none=True, responses=_ERRORS)
async def edit_images(
    request: Request,
    user: CurrentUser,
    runner: RunnerDep,
    settings: SettingsDep,
    images: ImagesSettingsDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG or WebP: the reference for the new image.")],
    prompt: Annotated[str, Form(description="What to draw, using the image as the reference.")],
    mask: Annotated[UploadFile | None, File(description="Accepted for compatibility and unused.")] = None,
    model: Annotated[str | None, Form()] = None,
    n: Annotated[int | None, Form()] = None,
    quality: Annotated[Quality | None, Form()] = None,
    response_format: Annotated[ResponseFormat | None, Form()] = None,
    size: Annotated[str | None, Form()] = None,
    style: Annotated[Style | None, Form()] = None,
    end_user: Annotated[str | None, Form(alias="user", description="Accepted and unused.")] = None,
    safety_identifier: Annotated[str | None, Form()] = None,
    output_format: Annotated[str | None, Form(description="Only png.")] = None,
    stream: Annotated[bool | None, Form(description="Only false.")] = None,
) -> ImagesResponse:
    """Generate images from a prompt with the uploaded image as scene 1's reference."""
    # 1. Check the fields before reading the upload.
    fields: dict[str, Any] = {
        "prompt": prompt,
        "model": model,
        "n": n,
        "quality": quality,
        "response_format": response_format,
        "size": size,
        "style": style,
        "user": end_user,
        "safety_identifier": safety_identifier,
        "output_format": output_format,
        "stream": stream,
    }
    try:
        body = ImageEditRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from exc
    # 2. The reference image, validated like every upload (the mask is not read).
    try:
        picture = await receive_image(
            image,
            field="image",
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            spool_dir=settings.upload_dir,
        )
    except UploadError as exc:
        raise OpenAIError(400, exc.message, param=exc.field, code=exc.kind) from exc
    return await run_images(
        body=body,
        request=request,
        runner=runner,
        settings=settings,
        images=images,
        user_id=user.id,  # type: ignore[arg-type]
        image=picture,
    )
