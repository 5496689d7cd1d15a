"""Reference images from users: size-limited, decoded with bounded memory and re-encoded
before anything keeps them.

An upload is streamed to an owner-only temporary file with a byte limit, its header is checked
against the pixel limit before any decoding (a tiny file can claim billions of pixels), it is
decoded reduced to the largest frame a run uses (``api.core.images``) on a small pool of its
own, so that a burst of uploads queues instead of multiplying the peak memory and never holds
the threads other requests need, and only then saved, as a fresh PNG, where the run will read
it. Each refusal says which field failed and why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from PIL import Image

from imageforge.api.core.images import ImageRefused, decode_bounded
from imageforge.tools.storage import private_dirs, save_png

__all__ = [
    "ALLOWED_CONTENT_TYPES",
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_SIDE",
    "UploadError",
    "configure_decoding",
    "discard_upload",
    "receive_image",
    "store_reference",
]

ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/webp"})
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
_CHUNK = 64 * 1024
#: The long edge uploads are reduced to unless the deployment says otherwise (``upload_max_side``).
DEFAULT_MAX_SIDE = 2048
_STATUS = {"too_large": 413, "unsupported": 415, "invalid": 422}
_TYPES = {"too_large": "image_too_large", "unsupported": "unsupported_type", "invalid": "invalid_image"}


class _DecodePool:
    """The process's image decodes, at most ``size`` at once: the rest wait in the queue."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self.size = size
        self.max_side = DEFAULT_MAX_SIDE
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="upload-decode")

    def configure(self, size: int, max_side: int) -> None:
        with self._lock:
            self.max_side = max_side
            if size != self.size:
                old, self._executor = self._executor, ThreadPoolExecutor(size, thread_name_prefix="upload-decode")
                self.size = size
                old.shutdown(wait=False)

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            return self._executor


_pool = _DecodePool(2)


def configure_decoding(*, concurrency: int, max_side: int) -> None:
    """Set how many uploads decode at once and the long edge they are reduced to
    (``Settings.upload_decode_concurrency``, ``Settings.upload_max_side``); ``create_app`` calls it."""
    _pool.configure(concurrency, max_side)


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
    private_dirs(folder)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")  # mkstemp: mode 0600
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
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_pool.executor, _decode, path, field, max_pixels, _pool.max_side)
    finally:
        path.unlink(missing_ok=True)


def _decode(path: Path, field: str, max_pixels: int, max_side: int) -> Image.Image:
    try:
        return decode_bounded(path, formats=ALLOWED_FORMATS, max_pixels=max_pixels, max_side=max_side)
    except ImageRefused as exc:
        raise UploadError(_STATUS[exc.kind], field, f"`{field}` {exc}", _TYPES[exc.kind]) from exc


def store_reference(image: Image.Image, upload_dir: Path, generation_id: str) -> Path:
    """Where the run reads the user's image: ``<upload_dir>/<generation_id>/reference.png``,
    in an owner-only folder (the file itself is written 0600)."""
    return save_png(image, private_dirs(upload_dir / generation_id) / "reference.png").resolve()


def discard_upload(upload_dir: Path, generation_id: str) -> None:
    shutil.rmtree(upload_dir / generation_id, ignore_errors=True)
