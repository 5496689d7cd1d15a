"""Decoding untrusted images with bounded memory.

A PNG compresses a flat image about a thousandfold, so a 131 KB upload can unpack to 6300 x 6300
pixels: 159 MB of RGBA, and with the orientation fix, the RGB conversion and the alpha
composite each taking a full-size copy, about 400 MB per upload (issue 10, finding 4). Here:

1. The header is read first (``Image.open`` is lazy) and an image over ``max_pixels`` is refused
   before a byte of pixel data is decoded.
2. Nothing larger than ``max_side`` on its long edge is kept: a JPEG is decoded straight at a
   reduced scale (``Image.draft``: the DCT scales by 1/2, 1/4 or 1/8 while decoding); other
   formats are decoded once at full size and shrunk (``thumbnail`` with a ``reducing_gap``,
   a box ``reduce`` first) before any copy is made, so every later step works on the small image.
3. After a decode the C heap is trimmed (glibc's ``malloc_trim``): Pillow's pixel blocks come from
   malloc, and without a trim the freed megabytes of big decodes stay with the process.

How many decodes run at once is bounded by the caller (``api.services.uploads`` runs them on a
small pool of its own), so the peak is about ``concurrency x max_pixels x 4`` bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import warnings
from functools import cache
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageRefused", "decode_bounded", "release_memory"]


class ImageRefused(ValueError):
    """An image that is not decoded: ``kind`` is ``too_large``, ``unsupported`` or ``invalid``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _reduce_target(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_bounded(path: Path, *, formats: frozenset[str], max_pixels: int, max_side: int) -> Image.Image:
    """The image at ``path`` in RGB, at most ``max_side`` pixels on its long edge, upright.

    Raises :class:`ImageRefused`; its message names neither the file nor Pillow's internals.
    """
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below twice its limit; ours is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                fmt, (width, height) = opened.format, opened.size
                if fmt not in formats:
                    raise ImageRefused("unsupported", f"must be PNG, JPEG or WebP, got {fmt or 'an unknown format'}.")
                if width * height > max_pixels:
                    raise ImageRefused(
                        "too_large",
                        f"is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}.",
                    )
                target = _reduce_target(width, height, max_side)
                if fmt == "JPEG" and target != (width, height):
                    opened.draft("RGB", target)  # decode at 1/2, 1/4 or 1/8 scale, never below target
                opened.load()
                if max(opened.size) > max_side:  # in place: the full-size pixels are never copied
                    opened.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
                ImageOps.exif_transpose(opened, in_place=True)
                return _to_rgb(opened)  # a new image: ``opened`` is unusable once closed
    except ImageRefused:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRefused("too_large", "has too many pixels to decode safely.") from exc
    except UnidentifiedImageError as exc:
        raise ImageRefused("invalid", "is not an image that can be read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data: OSError ("image file is truncated"), SyntaxError (bad
        # PNG chunks) or ValueError. Pillow's wording is kept out of the answer.
        raise ImageRefused("invalid", "is truncated or corrupt.") from exc
    finally:
        release_memory()


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparent pixels over white (not black); works on the already reduced image."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.copy() if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(name).malloc_trim  # glibc only; musl and macOS have none
    return None


def release_memory() -> None:
    """Give freed heap pages back to the OS (glibc); a no-op elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
