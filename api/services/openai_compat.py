"""The OpenAI-compatible images API: OpenAI's request and response shapes over ImageForge.

``POST /v1/images/generations`` and ``POST /v1/images/edits`` take the fields the official
client sends and answer with its ``{created, data: [{b64_json | url, revised_prompt}]}``, so
``OpenAI(base_url="http://host/v1", api_key=<ImageForge bearer token>)`` works unchanged.
Behind them is the whole ImageForge flow: the prompt becomes a one-scene storyboard (the
prompt as its explicit scene; for an edit, the uploaded image as scene 1's reference), run by
the service's job runner (so the worker limit and the queue apply), and the request waits for
it. The generation is the caller's: it is in their history and trace viewer like any other.

How OpenAI's fields map (the decisions are in the constants and functions below):

- ``n``: images returned, 1-10: the ``n`` best-ranked variations of the scene's winning
  attempt. The run scores ``max(4, n)`` variations, or the deployment's
  ``IMAGEFORGE_OPENAI_IMAGES__VARIATIONS`` (then ``n`` above it is a 400 on ``n``).
- ``size``: ``WxH`` (each edge 64-4096) or ``auto`` (= 1024x1024). It picks the aspect-ratio
  preset closest to W/H (by log-ratio: 1024x1024 -> square, 1792x1024 and 1536x1024 -> 16:9,
  1024x1792 and 1024x1536 -> 4:5, 2048x878 -> 21:9) and the long edge as the resolution,
  capped by ``IMAGEFORGE_OPENAI_IMAGES__MAX_RESOLUTION`` (default 2048). The images returned
  are the generated frames, so their size is the preset's at that resolution (1792x1024 comes
  back as 1792x1008), not always W x H exactly.
- ``quality``: the cap on critique-loop rounds (``max_enhancement_iterations``): low 1,
  standard/medium 2, hd/high 4, xhigh 6, max 8; auto (or none) keeps the default, 4.
- ``style``: vivid or natural appends a short style sentence to the scene prompt, which the
  enhancement loop then works from (``STYLE_PHRASES``).
- ``response_format``: ``url`` (the default, as OpenAI's) gives the service's image URLs,
  fetched with the same ``Authorization: Bearer`` key; ``b64_json`` embeds the PNG bytes.
- ``revised_prompt``: the scene's final enhanced prompt.
- ``model``, ``user``, ``safety_identifier``: accepted and unused (the deployment's backends
  generate; the key names the user). ``mask`` (edits) is accepted and unused: the image is a
  reference for the whole frame, not an inpainting canvas. ``output_format`` may only be
  ``png`` and ``stream`` only false. Other fields are a 400 ``unknown_parameter``.

The endpoints' deployment settings are ``api.core.config.OpenAIImagesSettings``. Errors use
OpenAI's ``{"error": {message, type, param, code}}`` with the status codes the
client maps to its exceptions: 400 invalid input (``param`` names the field), 401 bad key,
429 full queue or the user's own cap of queued plus running jobs
(with Retry-After; ``code`` queue_full or user_jobs_limit), 500 a failed generation, 504 a generation that outlived
``IMAGEFORGE_OPENAI_IMAGES__TIMEOUT_S`` (it is cancelled). The last two carry
``x-should-retry: false``: the official client would otherwise repeat a long generation.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session
from starlette.exceptions import HTTPException

from imageforge.api.core.config import OpenAIImagesSettings, Settings
from imageforge.api.crud import generation as crud
from imageforge.api.models.generation import (
    TERMINAL_STATUSES,
    AttemptRecord,
    GenerationCreate,
    GenerationOptions,
    Scene,
    Variation,
)
from imageforge.api.services.job_queue import JobQueue, QueueFullError
from imageforge.api.services.status import image_url
from imageforge.api.services.submission import UserJobsFullError, submit
from imageforge.api.services.waiting import wait_for_job
from imageforge.graph.context import AspectRatio
from imageforge.tools.sizes import ASPECT_RATIOS
from imageforge.traces.reader import TraceNotFoundError, resolve_trace_file

__all__ = [
    "DEFAULT_SIZE",
    "MAX_N",
    "PROMPT_MAX_LENGTH",
    "QUALITY_ITERATIONS",
    "STYLE_PHRASES",
    "ImageData",
    "ImageEditRequest",
    "ImageGenerationRequest",
    "ImagesResponse",
    "OpenAIError",
    "OpenAIErrorDetail",
    "OpenAIErrorResponse",
    "Quality",
    "ResponseFormat",
    "Style",
    "best_variations",
    "closest_aspect_ratio",
    "frame_for",
    "generation_create",
    "http_error",
    "parse_size",
    "run_images",
    "styled_prompt",
    "validation_error",
    "variation_count",
]

MAX_N = 10
"""OpenAI's own limit on images per request."""
DEFAULT_SIZE = (1024, 1024)
"""What ``size="auto"`` (or no size) means."""
MIN_EDGE, MAX_EDGE = 64, 4096

QUALITY_ITERATIONS: dict[str, int | None] = {
    "low": 1,
    "standard": 2,
    "medium": 2,
    "hd": 4,
    "high": 4,
    "xhigh": 6,
    "max": 8,
    "auto": None,
}
"""``quality`` -> cap on critique-loop rounds; None keeps ``GenerationSettings``' default."""

STYLE_PHRASES: dict[str, str] = {
    "vivid": "Style: vivid, hyper-real and dramatic, with vibrant saturated colours and bold high-contrast light.",
    "natural": "Style: natural and true to life, with realistic colours, soft natural light and an understated look.",
}
"""``style`` -> the sentence appended to the scene prompt."""

#: The scene prompt (prompt + style sentence) must fit ``GenerationCreate``'s 2000 characters.
PROMPT_MAX_LENGTH = 2000 - 1 - max(len(phrase) for phrase in STYLE_PHRASES.values())

Quality = Literal["standard", "hd", "low", "medium", "high", "xhigh", "max", "auto"]
Style = Literal["vivid", "natural"]
ResponseFormat = Literal["url", "b64_json"]

_SIZE_PATTERN = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


# Errors ------------------------------------------------------------------------------------
class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error body; the official client reads ``param`` and ``code`` from it."""

    error: OpenAIErrorDetail


class OpenAIError(Exception):
    """An answer in OpenAI's error shape; raised anywhere under the /v1 routes. The app answers
    it, and any other error of those routes (request validation, authentication, body
    parsing), through :func:`validation_error` and :func:`http_error` (``api.main``)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = OpenAIErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = OpenAIErrorResponse(error=self.detail).model_dump()
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


_NO_RETRY = {"x-should-retry": "false"}
_FIELD_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _param(loc: Sequence[Any]) -> str | None:
    parts = [str(part) for part in loc if part not in _FIELD_LOCATIONS]
    return ".".join(parts) or None


def validation_error(errors: Sequence[Any]) -> OpenAIError:
    """A 400 naming the first bad field, from pydantic's or FastAPI's error list."""
    if not errors:
        return OpenAIError(400, "The request is invalid.")
    first = dict(errors[0])
    param = _param(first.get("loc", ()))
    kind = str(first.get("type", "value_error"))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ").rstrip(".")
    if kind == "json_invalid":
        return OpenAIError(
            400,
            f"The body is not valid JSON: {first.get('ctx', {}).get('error', message)}.",
            code="invalid_json",
        )
    code = {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter"}.get(kind, "invalid_value")
    if kind == "extra_forbidden":
        message = f"Unknown parameter: {param!r}."
    elif kind == "missing":
        message = f"Missing required parameter: {param!r}."
    else:
        message = f"Invalid value for {param!r}: {message}." if param else f"Invalid request body: {message}."
    more = len(errors) - 1
    if more:
        message += f" ({more} more error{'s' if more > 1 else ''} in the request.)"
    return OpenAIError(400, message, param=param, code=code)


def http_error(exc: HTTPException) -> OpenAIError:
    """An HTTPException (FastAPI's or Starlette's: authentication, body parsing) in OpenAI's shape."""
    detail = exc.detail
    headers = dict(exc.headers or {})
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        return OpenAIError(
            exc.status_code,
            str(first.get("msg", detail)),
            param=_param(first.get("loc", ())),
            headers=headers,
        )
    message = detail if isinstance(detail, str) else str(detail)
    if exc.status_code == 401:
        return OpenAIError(401, message, code="invalid_api_key", headers=headers)
    kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    return OpenAIError(exc.status_code, message, type=kind, headers=headers)


# Requests and responses --------------------------------------------------------------------
def parse_size(size: str | None) -> tuple[int, int]:
    """``"WxH"`` -> (W, H); ``"auto"`` or None -> 1024x1024.

    >>> parse_size("1792x1024")
    (1792, 1024)
    """
    if size is None or size.strip().lower() == "auto":
        return DEFAULT_SIZE
    match = _SIZE_PATTERN.match(size)
    if match is None:
        raise ValueError(f"`size` must be WIDTHxHEIGHT (e.g. 1024x1024) or auto, got {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    for name, edge in (("width", width), ("height", height)):
        if not MIN_EDGE <= edge <= MAX_EDGE:
            raise ValueError(f"`size` {name} must be {MIN_EDGE}-{MAX_EDGE} pixels, got {edge} in {size!r}")
    return width, height


def closest_aspect_ratio(width: int, height: int) -> AspectRatio:
    """The preset whose shape is nearest W/H, compared as log-ratios (so 2:1 and 1:2 are
    equally far from square).

    >>> closest_aspect_ratio(1024, 1792)
    '4:5'
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"`width` and `height` must be positive, got {width}x{height}")
    target = math.log(width / height)

    def distance(name: str) -> float:
        ratio_w, ratio_h = ASPECT_RATIOS[name]
        return abs(math.log(ratio_w / ratio_h) - target)

    return cast(AspectRatio, min(ASPECT_RATIOS, key=distance))


def frame_for(size: str | None, max_resolution: int) -> tuple[AspectRatio, int]:
    """(aspect-ratio preset, resolution) for an OpenAI ``size``, the long edge capped."""
    width, height = parse_size(size)
    return closest_aspect_ratio(width, height), min(max(width, height), max_resolution)


def styled_prompt(prompt: str, style: str | None) -> str:
    if style is None:
        return prompt
    if style not in STYLE_PHRASES:
        raise ValueError(f"`style` must be one of {sorted(STYLE_PHRASES)}, got {style!r}")
    return f"{prompt.rstrip()} {STYLE_PHRASES[style]}"


def variation_count(n: int, configured: int | None) -> int:
    """How many variations to generate and score for ``n`` images returned."""
    if n < 1:
        raise ValueError(f"`n` must be at least 1, got {n}")
    if configured is None:
        return max(4, n)
    if n > configured:
        raise ValueError(f"`n` ({n}) is more than the {configured} variations this server scores per image request")
    return configured


class ImageGenerationRequest(BaseModel):
    """POST /v1/images/generations (JSON)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX_LENGTH, description="What to draw.")
    model: str | None = Field(
        None, max_length=200, description="Accepted and unused: the deployment's backends generate."
    )
    n: int | None = Field(1, ge=1, le=MAX_N, description="Images returned: the best-ranked variations.")
    quality: Quality | None = Field(
        None,
        description="Critique-loop rounds: low 1, standard/medium 2, hd/high 4, xhigh 6, max 8.",
    )
    response_format: ResponseFormat | None = Field(None, description="url (default) or b64_json.")
    size: str | None = Field(
        None,
        max_length=32,
        description="WIDTHxHEIGHT or auto; picks the closest aspect-ratio preset.",
    )
    style: Style | None = Field(None, description="vivid or natural: a style sentence appended to the prompt.")
    user: str | None = Field(None, max_length=256, description="Accepted and unused: the API key names the user.")
    safety_identifier: str | None = Field(None, max_length=256, description="Accepted and unused.")
    output_format: Literal["png"] | None = Field(None, description="Only png.")
    stream: Literal[False] | None = Field(None, description="Streaming is not supported.")

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("`prompt` must contain text, got only whitespace")
        return stripped

    @field_validator("size")
    @classmethod
    def _size_parses(cls, value: str | None) -> str | None:
        parse_size(value)
        return value

    @property
    def count(self) -> int:
        return self.n if self.n is not None else 1


class ImageEditRequest(ImageGenerationRequest):
    """POST /v1/images/edits: the same fields as form fields, beside the ``image`` file."""


class ImageData(BaseModel):
    b64_json: str | None = Field(None, description="The PNG, base64-encoded (response_format=b64_json).")
    url: str | None = Field(
        None,
        description="The image on this service; send the same bearer key (response_format=url).",
    )
    revised_prompt: str | None = Field(None, description="The final enhanced prompt the image was generated from.")


class ImagesResponse(BaseModel):
    created: int = Field(description="Unix time of the answer.")
    data: list[ImageData]
    generation_id: str = Field(description="ImageForge extension: the generation in the caller's history.")


# Running -----------------------------------------------------------------------------------
def generation_create(body: ImageGenerationRequest, *, num_variations: int, max_resolution: int) -> GenerationCreate:
    """The one-scene storyboard an image request becomes: the prompt (styled) as its explicit
    scene, the size as a preset and resolution, the quality as a cap on critique rounds."""
    aspect_ratio, resolution = frame_for(body.size, max_resolution)
    options: dict[str, Any] = {
        "num_variations": num_variations,
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
    }
    iterations = QUALITY_ITERATIONS[body.quality or "auto"]
    if iterations is not None:
        options["max_enhancement_iterations"] = iterations
    return GenerationCreate(
        prompt=body.prompt,
        scenes=[styled_prompt(body.prompt, body.style)],
        settings=GenerationOptions(**options),
    )


def best_variations(variations: Sequence[Variation], n: int) -> list[Variation]:
    """The ``n`` best of an attempt's variations: by rank (1 = best), then by score."""
    ranked = sorted(variations, key=lambda v: (v.rank if v.rank > 0 else math.inf, -v.overall, v.index))
    return ranked[:n]


def _winning_variations(
    scenes: list[tuple[Scene, list[tuple[AttemptRecord, list[Variation]]]]],
) -> tuple[Scene, list[Variation]] | None:
    if not scenes:
        return None
    scene, attempts = scenes[0]
    if scene.winner_attempt is None:
        return None
    for attempt, variations in attempts:
        if attempt.attempt == scene.winner_attempt and variations:
            return scene, variations
    return None


def _load_result(engine: Any, generation_id: str) -> tuple[str | None, tuple[Scene, list[Variation]] | None]:
    with Session(engine) as session:
        generation = crud.get_generation(session=session, generation_id=generation_id, user_id=None)
        error = generation.error if generation is not None else None
        return error, _winning_variations(crud.load_scenes(session=session, generation_id=generation_id))


def _encode(trace_root: Path, generation_id: str, relative: str) -> str:
    return base64.b64encode(resolve_trace_file(trace_root, generation_id, relative).read_bytes()).decode("ascii")


async def run_images(
    *,
    body: ImageGenerationRequest,
    request: Request,
    runner: JobQueue,
    settings: Settings,
    images: OpenAIImagesSettings,
    user_id: int,
    image: Image.Image | None = None,
) -> ImagesResponse:
    """Submit the one-scene storyboard, wait for it, answer with its best variations."""
    # 1. Check inputs (the request model has checked each field; these depend on settings).
    try:
        num_variations = variation_count(body.count, images.variations)
    except ValueError as exc:
        raise OpenAIError(400, str(exc), param="n", code="invalid_value") from exc
    create = generation_create(body, num_variations=num_variations, max_resolution=images.max_resolution)
    # 2. Queue it like any storyboard: the worker limit and the queue apply.
    engine = request.app.state.engine
    base_url = str(request.base_url)
    try:
        accepted = await submit(
            runner=runner,
            engine=engine,
            settings=settings,
            user_id=user_id,
            create=create,
            base_url=base_url,
            image=image,
        )
    except QueueFullError as exc:  # the global queue, or this user's share of it
        raise OpenAIError(
            429,
            str(exc),
            type="requests",
            code="user_jobs_limit" if isinstance(exc, UserJobsFullError) else "queue_full",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc
    generation_id = accepted.generation_id
    # 3. Wait for it, bounded; a request that gives up (or whose client left) cancels it, so
    #    no worker keeps generating for nobody.
    status = await wait_for_job(
        hub=runner.hub,
        engine=engine,
        generation_id=generation_id,
        timeout_s=images.timeout_s,
        disconnected=request.is_disconnected,
    )
    if status not in TERMINAL_STATUSES:
        await runner.cancel(generation_id)
        reason = (
            "the client disconnected"
            if status == "disconnected"
            else f"it did not finish within {images.timeout_s:g} s"
        )
        raise OpenAIError(
            504,
            f"Generation {generation_id} was cancelled: {reason}.",
            type="server_error",
            code="timeout",
            headers=_NO_RETRY,
        )
    error, result = await asyncio.to_thread(_load_result, engine, generation_id)
    if status != "completed" or result is None:
        reason = error or ("it was cancelled" if status == "cancelled" else "its scene has no image")
        raise OpenAIError(
            500,
            f"Generation {generation_id} ended {status}: {reason}",
            type="server_error",
            code=f"generation_{status}",
            headers=_NO_RETRY,
        )
    # 4. The n best variations of the winning attempt, as URLs or PNG bytes.
    scene, variations = result
    chosen = best_variations(variations, body.count)
    revised = scene.enhanced_prompt
    if (body.response_format or "url") == "url":
        data = [ImageData(url=image_url(base_url, generation_id, v.path), revised_prompt=revised) for v in chosen]
    else:
        try:
            encoded = await asyncio.to_thread(
                lambda: [_encode(settings.trace_root, generation_id, v.path) for v in chosen]
            )
        except (TraceNotFoundError, ValueError, OSError) as exc:
            raise OpenAIError(
                500,
                f"Generation {generation_id}: an image file is missing: {exc}",
                type="server_error",
                headers=_NO_RETRY,
            ) from exc
        data = [ImageData(b64_json=b64, revised_prompt=revised) for b64 in encoded]
    return ImagesResponse(created=int(time.time()), data=data, generation_id=generation_id)
