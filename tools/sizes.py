"""Frame sizes for seed 002's aspect-ratio presets.

Generators want both edges divisible by a small multiple (8 for a Stable Diffusion VAE, 16
for FLUX and SD3, whose transformers pack 2x2 latent patches), so the preset's exact ratio is
approximated and both edges are rounded to the nearest multiple, never below one multiple.

Two ways to size a frame:

- ``size_for``: the long edge is the ``resolution`` setting (what a user who asked for a
  resolution gets, on any backend);
- ``native_frame``: the pixel *area* is the model's native area (512² for Stable Diffusion
  1.5, 2.1-base, SD-Turbo and SDXL-Turbo; 768² for SD 2.1; 1024² for SDXL, SD3 and FLUX) at
  every aspect ratio, because a diffusion model composes well near the pixel count it was
  trained at and badly far below it (16:9 at a 512 long edge is 512x288, 56 % of SD-Turbo's
  area). A generator that knows its model's native edge says so with a ``native_edge``
  attribute (the diffusers generator does); ``choose_frame`` uses it unless the resolution
  was set explicitly.
"""

from __future__ import annotations

import math

from imageforge.tools.schemas import ImageSize

__all__ = ["ASPECT_RATIOS", "DEFAULT_LONG_EDGE", "choose_frame", "native_frame", "size_for"]

#: Preset name -> (width, height) proportions. "square" is seed 002's 1:1.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "square": (1, 1),
    "16:9": (16, 9),
    "4:5": (4, 5),
    "21:9": (21, 9),
}


#: The long edge of a frame when neither the request nor the generator says (the sketch, OpenAI).
DEFAULT_LONG_EDGE = 512


def _check(aspect_ratio: str, multiple: int, **edge: int) -> tuple[int, int]:
    """The preset's proportions, after refusing a bad preset, multiple or edge (named by its argument)."""
    if aspect_ratio not in ASPECT_RATIOS:
        known = ", ".join(repr(name) for name in ASPECT_RATIOS)
        raise ValueError(f"`aspect_ratio` must be one of {known}, got {aspect_ratio!r}.")
    if multiple < 1:
        raise ValueError(f"`multiple` must be a positive integer, got {multiple!r}.")
    for name, value in edge.items():
        if value < multiple:
            raise ValueError(f"`{name}` must be at least `multiple` ({multiple}), got {value!r}.")
    return ASPECT_RATIOS[aspect_ratio]


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def size_for(aspect_ratio: str, resolution: int, multiple: int = 8) -> ImageSize:
    """The frame for a preset whose long edge is ``resolution`` pixels.

    >>> str(size_for("16:9", 512))
    '512x288'
    """
    ratio_w, ratio_h = _check(aspect_ratio, multiple, resolution=resolution)
    long_edge = _round_to(resolution, multiple)
    if ratio_w >= ratio_h:
        width, height = long_edge, _round_to(resolution * ratio_h / ratio_w, multiple)
    else:
        width, height = _round_to(resolution * ratio_w / ratio_h, multiple), long_edge
    return ImageSize(width=width, height=height)


def native_frame(aspect_ratio: str, native_edge: int, multiple: int = 8) -> ImageSize:
    """The preset's frame whose pixel area is ``native_edge``² (rounded to ``multiple``).

    >>> str(native_frame("16:9", 512)), str(native_frame("16:9", 1024, multiple=16))
    ('680x384', '1360x768')
    """
    ratio_w, ratio_h = _check(aspect_ratio, multiple, native_edge=native_edge)
    scale = math.sqrt(ratio_w / ratio_h)
    return ImageSize(width=_round_to(native_edge * scale, multiple), height=_round_to(native_edge / scale, multiple))


def choose_frame(generator: object, aspect_ratio: str, resolution: int | None) -> tuple[ImageSize, str]:
    """The frame a scene asks ``generator`` for, and one line saying where it came from.

    A set ``resolution`` (``--resolution``, a request's ``resolution``) always wins: its long
    edge, as ``size_for``. Unset, a generator with a ``native_edge`` attribute gets its
    model's native area (``native_frame``), rounded to its ``size_multiple`` (8 when it has
    none); any other generator gets a long edge of ``DEFAULT_LONG_EDGE``.
    """
    multiple = int(getattr(generator, "size_multiple", 8) or 8)
    native_edge = getattr(generator, "native_edge", None)
    if resolution is not None or not native_edge:
        edge = resolution if resolution is not None else DEFAULT_LONG_EDGE
        reason = "set explicitly" if resolution is not None else "the default; the generator states no native size"
        return size_for(aspect_ratio, edge, multiple), f"long edge {edge} px (resolution {reason})"
    family = getattr(generator, "native_family", "") or "the model"
    frame = native_frame(aspect_ratio, int(native_edge), multiple)
    return frame, f"{aspect_ratio} at the native area of {family}, {native_edge}x{native_edge} px"
