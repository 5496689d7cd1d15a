"""A generator factory for the server tests: the offline sketch, slowed down.

The server tier configures it the way a deployment configures its own generator:
``IMAGEFORGE_GENERATOR__BACKEND=slow_generator:build`` (tests/ is on the server's
PYTHONPATH). ``SLOW_GENERATOR_DELAY_S`` seconds pass before every call, so a test can cancel
a job, or kill the server, while a scene is being generated; nothing changes but timing.
``SLOW_GENERATOR_DELAY_PER_MEGAPIXEL_S`` adds time in proportion to the image area, as a
diffusion model's cost grows: a benchmark runs long storyboards beside short ones that way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from PIL import Image

from imageforge.tools.base import ImageGenerator
from imageforge.tools.factory import build_generator
from imageforge.tools.schemas import GenerationOutput, ImageSize
from imageforge.tools.settings import GeneratorSettings

DELAY_ENV = "SLOW_GENERATOR_DELAY_S"
AREA_DELAY_ENV = "SLOW_GENERATOR_DELAY_PER_MEGAPIXEL_S"


@dataclass
class SlowGenerator:
    inner: ImageGenerator
    delay_s: float
    delay_per_megapixel_s: float = 0.0

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def model(self) -> str:
        return str(self.inner.model)

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput:
        time.sleep(self.delay_s + self.delay_per_megapixel_s * size.width * size.height / 1e6)
        return self.inner.generate(
            prompt, negative_prompt=negative_prompt, seeds=seeds, references=references, size=size
        )


def build(settings: GeneratorSettings, device: str) -> tuple[ImageGenerator, str]:
    """A ``tools.factory.GeneratorFactory``: the sketch generator behind a sleep."""
    delay_s = float(os.environ.get(DELAY_ENV, "0"))
    per_megapixel_s = float(os.environ.get(AREA_DELAY_ENV, "0"))
    inner, _ = build_generator(settings.model_copy(update={"backend": "sketch"}), device)
    note = f"Generator: sketch, {delay_s:g} s (+ {per_megapixel_s:g} s per megapixel) slower per call (tests only)."
    return SlowGenerator(inner, delay_s, per_megapixel_s), note
