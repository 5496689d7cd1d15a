"""Choosing the image generator from the backend settings.

Each backend registers a factory that builds its generator and a one-line description of
what runs and how to switch; ``auto`` resolves to a concrete backend without downloading
anything. Adding a backend means adding a factory to ``GENERATOR_FACTORIES`` and, if it
should win under ``auto``, teaching ``resolve_auto`` when it is usable.
"""

from __future__ import annotations

from collections.abc import Callable

from graph.context import BackendSettings
from tools.base import ImageGenerator
from tools.sketch import SketchGenerator

__all__ = ["GENERATOR_FACTORIES", "GeneratorFactory", "build_generator", "resolve_auto"]

GeneratorFactory = Callable[[BackendSettings], tuple[ImageGenerator, str]]

SKETCH_LINE = (
    "Generator: sketch (offline composition frames). Install weights with `imageforge models pull sd-turbo` "
    "or pass --generator diffusers --generator-model PATH for real images."
)


def _build_sketch(backends: BackendSettings) -> tuple[ImageGenerator, str]:
    return SketchGenerator(), SKETCH_LINE


#: Backend name -> factory. Real backends (diffusers, openai) add themselves here.
GENERATOR_FACTORIES: dict[str, GeneratorFactory] = {"sketch": _build_sketch}


def resolve_auto(backends: BackendSettings) -> str:
    """The backend ``auto`` stands for: the first registered real backend that is usable
    without a download, else the offline sketch. With only the sketch registered, sketch."""
    return "sketch"


def build_generator(backends: BackendSettings) -> tuple[ImageGenerator, str]:
    """Build the configured generator and say in one line which runs and how to switch."""
    name = resolve_auto(backends) if backends.generator == "auto" else backends.generator
    factory = GENERATOR_FACTORIES.get(name)
    if factory is None:
        available = sorted(GENERATOR_FACTORIES) + ["auto"]
        raise ValueError(f"`generator` {name!r} is not available yet; available: {available!r}.")
    return factory(backends)
