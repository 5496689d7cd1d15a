"""Frame sizes for seed 002's aspect-ratio presets.

Generators want both edges divisible by a small multiple (8 for a Stable Diffusion VAE), so
the preset's exact ratio is approximated: the long edge is ``resolution`` and both edges are
rounded to the nearest multiple, never below one multiple.
"""

from __future__ import annotations

from imageforge.tools.schemas import ImageSize

__all__ = ["ASPECT_RATIOS", "size_for"]

#: Preset name -> (width, height) proportions. "square" is seed 002's 1:1.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "square": (1, 1),
    "16:9": (16, 9),
    "4:5": (4, 5),
    "21:9": (21, 9),
}


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def size_for(aspect_ratio: str, resolution: int, multiple: int = 8) -> ImageSize:
    """The frame for a preset whose long edge is ``resolution`` pixels.

    >>> str(size_for("16:9", 512))
    '512x288'
    """
    if aspect_ratio not in ASPECT_RATIOS:
        known = ", ".join(repr(name) for name in ASPECT_RATIOS)
        raise ValueError(f"`aspect_ratio` must be one of {known}, got {aspect_ratio!r}.")
    if multiple < 1:
        raise ValueError(f"`multiple` must be a positive integer, got {multiple!r}.")
    if resolution < multiple:
        raise ValueError(f"`resolution` must be at least `multiple` ({multiple}), got {resolution!r}.")
    ratio_w, ratio_h = ASPECT_RATIOS[aspect_ratio]
    long_edge = _round_to(resolution, multiple)
    if ratio_w >= ratio_h:
        width, height = long_edge, _round_to(resolution * ratio_h / ratio_w, multiple)
    else:
        width, height = _round_to(resolution * ratio_w / ratio_h, multiple), long_edge
    return ImageSize(width=width, height=height)
