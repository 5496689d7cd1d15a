"""Choosing the image generator from the backend settings.

Each backend registers a factory that builds its generator and a one-line description of
what runs and how to switch; ``auto`` resolves to a concrete backend without downloading
anything. Adding a backend means adding a factory to ``GENERATOR_FACTORIES`` and, if it
should win under ``auto``, teaching ``resolve_auto`` when it is usable.

A deployment can also plug in its own generator without touching this module: set
``GeneratorSettings.backend`` to the import path ``"package.module:factory"`` of a
``GeneratorFactory`` (``IMAGEFORGE_GENERATOR__BACKEND=mypackage.generators:build`` for the
service). ``build_generator`` imports it and calls it like a built-in factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from imageforge.tools import model_store
from imageforge.tools.base import ImageGenerator
from imageforge.tools.settings import GeneratorSettings
from imageforge.tools.sketch import SketchGenerator

if TYPE_CHECKING:
    from imageforge.tools.generation_cache import GenerationCache

__all__ = ["GENERATOR_FACTORIES", "GeneratorFactory", "build_generator", "load_factory", "resolve_auto"]

GeneratorFactory = Callable[[GeneratorSettings, str], tuple[ImageGenerator, str]]
"""(generator settings, device) -> (the generator, one line saying what runs and how to switch)."""

SKETCH_LINE = (
    "Generator: sketch (offline composition frames). Install weights with `imageforge models pull sd-turbo` "
    "or pass --generator diffusers --generator-model PATH for real images."
)


def _build_sketch(settings: GeneratorSettings, device: str) -> tuple[ImageGenerator, str]:
    return SketchGenerator(), SKETCH_LINE


def _cache(settings: GeneratorSettings) -> GenerationCache | None:
    """Seed 002's generation cache, when a folder is configured (the CLI and the API set one)."""
    from imageforge.tools.generation_cache import GenerationCache

    return GenerationCache(settings.cache_dir) if settings.cache_dir else None


def _build_diffusers(settings: GeneratorSettings, device: str) -> tuple[ImageGenerator, str]:
    from imageforge.tools.diffusers_generator import load_diffusers_generator

    if settings.backend == "auto":
        model = model_store.auto_generator_model(settings.model)
    else:
        model = settings.model or model_store.auto_generator_model()
    if model is None:
        raise ValueError(
            "`generator` 'diffusers' needs --generator-model (a local folder, or a hub id whose "
            "weights are in the Hugging Face cache) or sd-turbo on disk: run "
            "`imageforge models pull sd-turbo`."
        )
    try:
        generator = load_diffusers_generator(
            model,
            device=device,
            attention_slicing=settings.attention_slicing,
            vae_slicing=settings.vae_slicing,
            cpu_offload=settings.cpu_offload,
            img2img_strength=settings.strength,
            ip_adapter=settings.ip_adapter,
            ip_adapter_image_encoder=settings.ip_adapter_image_encoder,
            steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            cache=_cache(settings),
        )
    except (FileNotFoundError, LookupError) as exc:
        raise ValueError(str(exc)) from exc
    line = (
        f"Generator: diffusers {generator.model} on {generator.device} ({generator.dtype}, "
        f"{generator.steps} steps, guidance {generator.guidance_scale:g}). "
        "Pass --generator sketch for offline frames or --generator-model for another model."
    )
    return generator, line


def _build_openai(settings: GeneratorSettings, device: str) -> tuple[ImageGenerator, str]:
    from imageforge.tools.openai_images import load_openai_generator

    # The SDK reads OPENAI_API_KEY (and OPENAI_BASE_URL for compatible servers).
    generator = load_openai_generator(settings.model or "gpt-image-1", cache=_cache(settings))
    return generator, (
        f"Generator: OpenAI Images {generator.model}. "
        "Pass --generator sketch for offline frames or --generator diffusers for local models."
    )


#: Backend name -> factory.
GENERATOR_FACTORIES: dict[str, GeneratorFactory] = {
    "sketch": _build_sketch,
    "diffusers": _build_diffusers,
    "openai": _build_openai,
}


def resolve_auto(settings: GeneratorSettings) -> str:
    """diffusers when its weights are already on disk (the configured model, else sd-turbo);
    otherwise the offline sketch. Never downloads."""
    if model_store.auto_generator_model(settings.model) is not None:
        return "diffusers"
    return "sketch"


def load_factory(path: str) -> GeneratorFactory:
    """The user-supplied factory at ``"package.module:attribute"``; a ``ValueError`` naming the
    setting when it does not import or is not callable."""
    module_name, _, attribute = path.partition(":")
    where = f"`generator.backend` {path!r} (IMAGEFORGE_GENERATOR__BACKEND)"
    if not module_name or not attribute:
        raise ValueError(f"{where} must be a factory's import path 'package.module:factory'.")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ValueError(f"{where}: module {module_name!r} has no attribute {attribute!r}.") from exc
    if not callable(target):
        raise ValueError(f"{where}: {attribute!r} is not callable, got {type(target).__name__}.")
    return target


def build_generator(settings: GeneratorSettings, device: str = "auto") -> tuple[ImageGenerator, str]:
    """Build the configured generator and say in one line which runs and how to switch."""
    name = resolve_auto(settings) if settings.backend == "auto" else settings.backend
    if ":" in name:
        return load_factory(name)(settings, device)
    factory = GENERATOR_FACTORIES.get(name)
    if factory is None:
        available = [*sorted(GENERATOR_FACTORIES), "auto"]
        raise ValueError(f"`generator` {name!r} is not available yet; available: {available!r}.")
    return factory(settings, device)
