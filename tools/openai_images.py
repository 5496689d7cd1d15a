"""Image generation through the OpenAI Images API (or a server that speaks it).

gpt-image models make up to 10 images per request and take reference images through the
edit endpoint; dall-e-3 makes one image per request, so N variations are N concurrent
requests, and it has no edit endpoint, so references are ignored with a warning. Each model
accepts a few fixed sizes: the closest in aspect ratio is requested and the result is
cropped and resized to the frame asked for.

The SDK's own retries are off (``max_retries=0``) so that there is one retry layer: tenacity
retries 408, 409, 429, 5xx, timeouts and dropped connections with exponential backoff and
jitter, or the server's ``Retry-After``, and every retry is counted, bounded and written to the
trace. A quota error (429 ``insufficient_quota``) and other 4xx answers are not retried.

The Images API takes no seed. Each image still carries the seed it was requested for (the
generation cache is keyed by it, and the trace records it), with a note that it did not
determine the image.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps, UnidentifiedImageError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from imageforge.tools.base import GenerationError
from imageforge.tools.generation_cache import GenerationCache, lookup_seeds, references_digest
from imageforge.tools.schemas import GenerationOutput, ImageSize

if TYPE_CHECKING:
    import openai

__all__ = [
    "ModelLimits",
    "OpenAIImageGenerator",
    "api_size_for",
    "is_transient",
    "load_openai_generator",
    "model_limits",
    "retry_after_s",
    "wait_retry_after",
]

logger = logging.getLogger(__name__)

SEED_NOTE = "The OpenAI Images API takes no seed; the seed is recorded for the trace and cache only."


@dataclass(frozen=True)
class ModelLimits:
    """What one Images API model accepts."""

    sizes: tuple[tuple[int, int], ...] | None
    """Accepted (width, height); None: any WxH is passed through (compatible servers)."""
    max_n: int
    edits: bool
    """Whether the edit endpoint takes reference images for this model."""
    response_format: bool
    """Whether to ask for b64_json explicitly (gpt-image models always return it and reject
    the parameter)."""


_GPT_IMAGE = ModelLimits(sizes=((1024, 1024), (1536, 1024), (1024, 1536)), max_n=10, edits=True, response_format=False)
_DALL_E_3 = ModelLimits(sizes=((1024, 1024), (1792, 1024), (1024, 1792)), max_n=1, edits=False, response_format=True)
_DALL_E_2 = ModelLimits(sizes=((256, 256), (512, 512), (1024, 1024)), max_n=10, edits=False, response_format=True)
_OTHER = ModelLimits(sizes=None, max_n=1, edits=False, response_format=True)


def model_limits(model: str) -> ModelLimits:
    """Limits of the gpt-image family, dall-e-3 and dall-e-2; any other model (a compatible
    server's) is treated conservatively: one image per request, no edits, size as asked."""
    if model.startswith("gpt-image"):
        return _GPT_IMAGE
    if model == "dall-e-3":
        return _DALL_E_3
    if model == "dall-e-2":
        return _DALL_E_2
    return _OTHER


def api_size_for(size: ImageSize, limits: ModelLimits) -> str:
    """The accepted size closest in aspect ratio to ``size`` (the larger on a tie)."""
    if limits.sizes is None:
        return f"{size.width}x{size.height}"
    target = size.width / size.height
    width, height = min(limits.sizes, key=lambda wh: (abs(wh[0] / wh[1] - target), -wh[0] * wh[1]))
    return f"{width}x{height}"


Wait = Callable[[RetryCallState], float]
"""A tenacity wait strategy: the seconds to sleep before the next attempt."""


def is_transient(exc: BaseException) -> bool:
    """What the SDK's own policy retries: timeouts, dropped connections, 408, 409 (lock
    timeout), 429 and 5xx; not a 429 for an exhausted quota, nor any other 4xx."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429 and getattr(exc, "code", None) == "insufficient_quota":
            return False
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # includes APITimeoutError


def retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds from the error response's ``retry-after-ms`` or ``Retry-After`` (seconds or an
    HTTP date); None without one."""
    # tenacity reads no HTTP headers, and the SDK's parser is private: this is the small rest.
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    parsers: list[tuple[str, Callable[[str], float]]] = [
        ("retry-after-ms", lambda value: float(value) / 1000),
        ("retry-after", float),
        ("retry-after", lambda value: parsedate_to_datetime(value).timestamp() - time.time()),
    ]
    for name, parse in parsers:
        try:
            return max(0.0, parse(headers[name]))
        except (KeyError, TypeError, ValueError):
            continue
    return None


def wait_retry_after(fallback: Wait, *, max_s: float = 60.0) -> Wait:
    """A tenacity wait: the server's Retry-After when the failed attempt's error carries one,
    else ``fallback``; at most ``max_s`` either way."""

    def wait(state: RetryCallState) -> float:
        seconds = retry_after_s(state.outcome.exception() if state.outcome else None)
        return min(seconds if seconds is not None else fallback(state), max_s)

    return wait


DEFAULT_WAIT = wait_retry_after(wait_exponential_jitter(initial=1.0, max=60.0, jitter=1.0))
"""1, 2, 4 ... s plus up to 1 s of jitter (so concurrent requests do not retry in lockstep),
or Retry-After; at most 60 s."""


def _reason(exc: BaseException | None) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {_error_message(exc)}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    return f"connection failed: {exc}"


@dataclass
class _Answer:
    """One API response turned into images, with how many attempts it took."""

    images: list[Image.Image]
    revised_prompts: list[str | None]
    attempts: int
    warnings: list[str]


class OpenAIImageGenerator:
    """Images from an OpenAI-compatible Images API through an injected ``openai.OpenAI`` client
    (built with ``max_retries=0``; see ``load_openai_generator``)."""

    name = "openai"

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str = "gpt-image-1",
        quality: str | None = None,
        max_attempts: int = 5,
        wait: Wait = DEFAULT_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        max_concurrency: int = 4,
        cache: GenerationCache | None = None,
    ) -> None:
        if not model:
            raise ValueError(f"`model` must be a non-empty model name, got {model!r}.")
        if max_attempts < 1:
            raise ValueError(f"`max_attempts` must be >= 1, got {max_attempts!r}.")
        if max_concurrency < 1:
            raise ValueError(f"`max_concurrency` must be >= 1, got {max_concurrency!r}.")
        self.client = client
        self.model = model
        self.quality = quality
        self.limits = model_limits(model)
        self.max_attempts = max_attempts
        self.wait = wait
        self.sleep = sleep
        self.max_concurrency = max_concurrency
        self.cache = cache

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput:
        start = time.perf_counter()
        # 1. Check inputs
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"`prompt` must be a non-empty string, got {prompt!r}.")
        if not seeds:
            raise ValueError("`seeds` must hold at least one seed, got [].")

        # 2. Define call parameters: endpoint, size, the prompt the API gets
        warnings: list[str] = []
        use_edit = bool(references) and self.limits.edits
        if references and not self.limits.edits:
            warnings.append(f"References ignored: {self.model} has no edit endpoint that takes reference images.")
        api_size = api_size_for(size, self.limits)
        # The API has no negative prompt; the instruction goes into the prompt itself.
        full_prompt = f"{prompt}\n\nAvoid: {negative_prompt}" if negative_prompt.strip() else prompt
        params = {
            "backend": self.name,
            "endpoint": "edits" if use_edit else "generations",
            "quality": self.quality,
        }

        # 3. Look up the cache
        found = lookup_seeds(
            self.cache,
            seeds,
            prompt=full_prompt,
            negative_prompt="",
            model=self.model,
            size=size,
            reference_digest=references_digest(references) if use_edit else "",
            params=params,
        )

        # 4. Request the misses: batches of max_n, concurrently
        pending = found.pending
        groups = [pending[i : i + self.limits.max_n] for i in range(0, len(pending), self.limits.max_n)]
        if groups:
            workers = min(len(groups), self.max_concurrency)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-images") as pool:
                answers = list(
                    pool.map(
                        lambda group: self._request(full_prompt, len(group), api_size, references if use_edit else []),
                        groups,
                    )
                )
            for request_index, (group, answer) in enumerate(zip(groups, answers, strict=True)):
                warnings.extend(answer.warnings)
                for seed, image, revised in zip(group, answer.images, answer.revised_prompts, strict=True):
                    metadata = {
                        **params,
                        "model": self.model,
                        "seed": seed,
                        "seed_applied": False,
                        "seed_note": SEED_NOTE,
                        "size": str(size),
                        "api_size": api_size,
                        "request_index": request_index,
                        "images_in_request": len(group),
                        "attempts": answer.attempts,
                        "references_used": len(references) if use_edit else 0,
                        "negative_prompt_applied": "appended to the prompt" if negative_prompt.strip() else False,
                        "revised_prompt": revised,
                        "cache_hit": False,
                    }
                    framed = ImageOps.fit(image, (size.width, size.height), Image.Resampling.LANCZOS)
                    found.store(seed, framed, metadata)

        return GenerationOutput(
            images=[found.images[seed] for seed in seeds],
            backend=self.name,
            model=self.model,
            elapsed_s=time.perf_counter() - start,
            cache_hits=found.hits,
            warnings=warnings,
        )

    # -- one request, with retries ---------------------------------------------------------

    def _request(self, prompt: str, n: int, api_size: str, references: list[Image.Image]) -> _Answer:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": n, "size": api_size}
        if self.quality is not None:
            kwargs["quality"] = self.quality
        if self.limits.response_format:
            kwargs["response_format"] = "b64_json"
        if references:
            kwargs["image"] = [
                (f"reference_{i}.png", _png_bytes(image), "image/png") for i, image in enumerate(references, 1)
            ]
            call: Callable[..., Any] = self.client.images.edit
        else:
            call = self.client.images.generate

        warnings: list[str] = []

        def record(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = retry_after_s(exc)
            source = f"Retry-After {retry_after:g}s" if retry_after is not None else "backoff"
            delay = state.next_action.sleep if state.next_action else 0.0
            message = (
                f"OpenAI Images attempt {state.attempt_number} {_reason(exc)}; retrying in {delay:.2f}s ({source})."
            )
            logger.warning(message)
            warnings.append(message)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            retry=retry_if_exception(is_transient),
            before_sleep=record,
            sleep=self.sleep,
        )
        try:
            response = retrying(call, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt
            raise GenerationError(
                f"OpenAI Images ({self.model}) failed after {last.attempt_number} attempts; "
                f"last error {_reason(last.exception())}."
            ) from last.exception()
        except openai.APIStatusError as exc:
            raise GenerationError(f"OpenAI Images ({self.model}) refused the request with {_reason(exc)}") from exc
        images, revised = _decode(response, self.model)
        if len(images) != n:
            raise GenerationError(f"OpenAI Images ({self.model}) returned {len(images)} images for n={n}.")
        attempts = retrying.statistics["attempt_number"]
        return _Answer(images=images, revised_prompts=revised, attempts=attempts, warnings=warnings)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(response: Any, model: str) -> tuple[list[Image.Image], list[str | None]]:
    images, revised = [], []
    for item in response.data or []:
        if not item.b64_json:
            raise GenerationError(
                f"OpenAI Images ({model}) answered without b64_json (a URL instead?); this backend needs base64 images."
            )
        try:
            with Image.open(io.BytesIO(base64.b64decode(item.b64_json))) as opened:
                images.append(opened.convert("RGB"))
        except (binascii.Error, UnidentifiedImageError, OSError) as exc:
            raise GenerationError(f"OpenAI Images ({model}) returned an image that cannot be decoded: {exc}") from exc
        revised.append(getattr(item, "revised_prompt", None))
    return images, revised


def load_openai_generator(
    model: str = "gpt-image-1",
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout_s: float = 120.0,
    quality: str | None = None,
    max_attempts: int = 5,
    wait: Wait = DEFAULT_WAIT,
    max_concurrency: int = 4,
    cache: GenerationCache | None = None,
) -> OpenAIImageGenerator:
    """A generator with its own SDK client: retries off in the SDK (tenacity does them here), an
    explicit timeout, ``base_url`` for compatible servers. ``api_key`` None lets the SDK read
    OPENAI_API_KEY."""
    import openai

    if timeout_s <= 0:
        raise ValueError(f"`timeout_s` must be > 0, got {timeout_s!r}.")
    try:
        client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)
    except openai.OpenAIError as exc:
        raise ValueError(
            "OpenAI image generation needs an API key: pass `api_key` or set OPENAI_API_KEY "
            f"(a compatible server that ignores keys still needs a placeholder). ({exc})"
        ) from exc
    return OpenAIImageGenerator(
        client,
        model=model,
        quality=quality,
        max_attempts=max_attempts,
        wait=wait,
        max_concurrency=max_concurrency,
        cache=cache,
    )
