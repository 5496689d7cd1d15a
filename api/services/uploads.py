"""Reference images from users: size-limited, decoded and re-encoded before anything keeps them.

An upload is streamed to a temporary file with a byte limit, its header is checked against
the pixel limit before any decoding (a tiny file can claim billions of pixels), it is fully
decoded through ``tools.storage.load_image``, and only then saved, as a fresh PNG, where the
run will read it. Each refusal says which field failed and why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from imageforge.tools.storage import InvalidImageError, load_image, save_png

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "ALLOWED_FORMATS",
    "UploadError",
    "discard_upload",
    "receive_image",
    "store_reference",
]

ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp"})
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
_CHUNK = 64 * 1024


@dataclass
class UploadError(Exception):
    """A refused upload: the HTTP status and a message naming the field."""

    status_code: int
    field: str
    message: str
    kind: str

    def detail(self) -> list[dict[str, object]]:
        return [{"loc": ["body", self.field], "msg": self.message, "type": self.kind}]


async def _spool(upload: UploadFile, *, field: str, max_bytes: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadError(
                        413, field, f"`{field}` is larger than the limit of {max_bytes} bytes.", "too_large"
                    )
                handle.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    if size == 0:
        Path(name).unlink(missing_ok=True)
        raise UploadError(422, field, f"`{field}` is empty.", "empty_file")
    return Path(name)


def _check_header(path: Path, *, field: str, max_pixels: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                fmt, (width, height) = opened.format, opened.size
    except Image.DecompressionBombError as exc:
        raise UploadError(
            413, field, f"`{field}` has too many pixels to decode safely: {exc}", "image_too_large"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow names the file it read: the server's spool path is nobody's business.
        detail = str(exc).replace(str(path), "the upload")
        raise UploadError(422, field, f"`{field}` is not a readable image: {detail}", "invalid_image") from exc
    if fmt not in ALLOWED_FORMATS:
        raise UploadError(
            415, field, f"`{field}` must be PNG, JPEG or WebP, got {fmt or 'an unknown format'}.", "unsupported_type"
        )
    if width * height > max_pixels:
        raise UploadError(
            413,
            field,
            f"`{field}` is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}.",
            "image_too_large",
        )


async def receive_image(
    upload: UploadFile, *, field: str, max_bytes: int, max_pixels: int, spool_dir: Path
) -> Image.Image:
    """The validated image in RGB, or ``UploadError``. Nothing is left on disk either way."""
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise UploadError(
            415,
            field,
            f"`{field}` must be an image/png, image/jpeg or image/webp upload, "
            f"got {content_type or 'no content type'!r}.",
            "unsupported_type",
        )
    path = await _spool(upload, field=field, max_bytes=max_bytes, folder=spool_dir)
    try:
        return await asyncio.to_thread(_decode, path, field=field, max_pixels=max_pixels)
    finally:
        path.unlink(missing_ok=True)


def _decode(path: Path, *, field: str, max_pixels: int) -> Image.Image:
    _check_header(path, field=field, max_pixels=max_pixels)
    try:
        return load_image(path, max_pixels=max_pixels)
    except InvalidImageError as exc:
        message = str(exc).replace(str(path), "the upload")
        raise UploadError(422, field, f"`{field}` is not a usable image: {message}", "invalid_image") from exc


def store_reference(image: Image.Image, upload_dir: Path, generation_id: str) -> Path:
    """Where the run reads the user's image: ``<upload_dir>/<generation_id>/reference.png``."""
    return save_png(image, upload_dir / generation_id / "reference.png").resolve()


def discard_upload(upload_dir: Path, generation_id: str) -> None:
    shutil.rmtree(upload_dir / generation_id, ignore_errors=True)
