"""The one interface every image generator implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from imageforge.tools.schemas import GenerationOutput, ImageSize


@runtime_checkable
class ImageGenerator(Protocol):
    """Makes one image per seed from one prompt, optionally conditioned on references.

    Implementations batch the seeds into as few model calls as the backend allows, and must
    give the same image for the same (prompt, seed, reference, size) whether it was made
    alone or in a batch. ``references`` are ordered by importance: the first is the one the
    attempt strategy chose; the rest (e.g. the storyboard's anchor) may be used to hold the
    look steady. Generation is blocking; the graph runs it in a worker thread.
    """

    name: str
    model: str

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput: ...


class GenerationError(RuntimeError):
    """A generator could not produce the batch; the message says why and what to change."""
