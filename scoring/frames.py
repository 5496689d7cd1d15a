"""Every scorer judges the whole frame: images are padded to a square before any processor.

The model processors do not keep a wide frame whole. CLIP's (PickScore, CLIP-score, the
aesthetic head, CLIP consistency) and DINOv2's resize the short side and centre-crop a
square, so a 16:9 frame is judged on its central 56 % (9/16) and a 21:9 frame on 43 %: a
subject at a third of the frame, or a logo at its edge, is cut away before the model sees
it. BLIP-2's and InstructBLIP's resize to a fixed square, which squashes a wide frame
instead. Padding the short side to make a square, centred, shows every model the whole
frame at its true proportions: CLIP's crop then removes nothing and BLIP's resize no longer
distorts. (LLaVA-1.5's own "pad" preprocessing does the same.)

The padding colour is the processor's ``image_mean`` (CLIP's when the processor has none),
so the padded border normalises to about zero: the neutral input the vision tower sees least
signal in. A square image is passed through unchanged (only converted to RGB), so square
frames score exactly as before. ``whole_frames`` is the one entry point, used by
``clip_backbone.embed_image_batches`` (every CLIP and DINOv2 scorer) and by VQAScore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

__all__ = ["CLIP_MEAN_RGB", "padding_colour", "whole_frame", "whole_frames"]

#: OpenAI CLIP's image_mean (0.4815, 0.4578, 0.4082) in 0-255.
CLIP_MEAN_RGB: tuple[int, int, int] = (123, 117, 104)


def padding_colour(processor: Any) -> tuple[int, int, int]:
    """The processor's ``image_mean`` as an RGB colour in 0-255; a combined processor (BLIP,
    LLaVA) is looked into for its ``image_processor``. CLIP's mean when there is none."""
    for candidate in (processor, getattr(processor, "image_processor", None)):
        mean = getattr(candidate, "image_mean", None)
        if isinstance(mean, (list, tuple)) and len(mean) == 3:
            try:
                r, g, b = (max(0, min(255, round(float(m) * 255))) for m in mean)
            except (TypeError, ValueError):
                continue
            return (r, g, b)
    return CLIP_MEAN_RGB


def whole_frame(image: Image.Image, fill: tuple[int, int, int] = CLIP_MEAN_RGB) -> Image.Image:
    """``image`` as RGB, centred on a square of its long edge filled with ``fill``."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    if width == height:
        return rgb
    side = max(width, height)
    square = Image.new("RGB", (side, side), fill)
    square.paste(rgb, ((side - width) // 2, (side - height) // 2))
    return square


def whole_frames(images: Sequence[Image.Image], processor: Any = None) -> list[Image.Image]:
    """``whole_frame`` for each image, padded with ``processor``'s mean colour."""
    fill = padding_colour(processor) if processor is not None else CLIP_MEAN_RGB
    return [whole_frame(image, fill) for image in images]
