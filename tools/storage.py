"""Image files on disk: atomic writes, validated reads, content digests.

Trace folders are read while runs are still writing them (the API serves images of a job in
progress) and a process may die mid-write, so every file is written to a temporary sibling
and renamed over the target: readers, and a process that restarts after a crash, see the
old file or the new one, never half of one. ``durable=True`` also fsyncs the file and its
folder, which survives power loss too but costs milliseconds per file; it is kept for
stored user input, not for the dozens of trace files each scene writes. Images that come from
users are untrusted, so reading validates them and turns every way they can be broken into one
exception type the API maps to a 4xx.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "InvalidImageError",
    "atomic_copy",
    "atomic_write_bytes",
    "image_digest",
    "load_image",
    "private_dirs",
    "save_png",
    "save_pngs",
]

#: Largest image ``load_image`` accepts by default: 8192 x 8192. Decoding allocates width x
#: height x channels bytes before anything can be checked, so a 100-byte PNG that claims to
#: be 50 000 x 50 000 pixels must be refused from its header alone.
DEFAULT_MAX_PIXELS = 8192 * 8192


class InvalidImageError(ValueError):
    """A file that cannot be used as an image: missing, not an image, truncated or too large."""


def private_dirs(folder: Path) -> Path:
    """Create ``folder`` and its missing parents owner-only (0700). ``Path.mkdir`` and
    ``os.makedirs`` give only the last folder the mode; the ones between get 0755."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)
    return folder


def private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only (0600) unless it exists, before a library opens it
    with its own mode (SQLite uses 0644 and the umask; its ``-wal`` and ``-shm`` files take
    the database file's mode). A file an older version left readable by others is tightened."""
    private_dirs(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The temporary file lives in the target's folder because ``os.replace`` is atomic only
    within one file system. Missing parent folders are created owner-only (0700); the file is
    0600 (``mkstemp``'s mode, kept by the rename). ``durable`` adds fsyncs.
    """
    target = Path(path)
    private_dirs(target.parent)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    if durable:
        _fsync_dir(target.parent)
    return target


def atomic_copy(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Publish an existing file under a second name, atomically.

    A hard link costs no copy (trace images are never modified after they are written);
    where links are not supported the bytes are copied.
    """
    target = Path(path)
    private_dirs(target.parent)
    tmp_name = target.parent / f".{target.name}.{os.getpid()}.{id(target)}.tmp"
    try:
        os.link(source, tmp_name)
    except OSError:
        return atomic_write_bytes(target, Path(source).read_bytes())
    try:
        os.replace(tmp_name, target)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return target


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself; a no-op where folders cannot be opened (Windows)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class _RecentImages:
    """Decoded copies of the images this process wrote last, keyed by path and file stamp.

    A scene writes its variations and reads them straight back to score them; serving those
    reads from memory saves a PNG decode per image. An entry is used only while the file on
    disk is still the one written (same mtime and size), so the cache can never serve stale
    pixels. Bounded by total pixels (about 48 MB of RGB).
    """

    def __init__(self, max_pixels: int = 16 * 1024 * 1024) -> None:
        self.max_pixels = max_pixels
        self._items: OrderedDict[str, tuple[tuple[int, int], Image.Image]] = OrderedDict()
        self._pixels = 0
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size

    def remember(self, path: Path, image: Image.Image) -> None:
        key, entry = str(path), (self._stamp(path), image.copy())
        with self._lock:
            if key in self._items:
                self._pixels -= _pixels(self._items.pop(key)[1])
            self._items[key] = entry
            self._pixels += _pixels(entry[1])
            while self._pixels > self.max_pixels and self._items:
                self._pixels -= _pixels(self._items.popitem(last=False)[1][1])

    def get(self, path: Path) -> Image.Image | None:
        with self._lock:
            entry = self._items.get(str(path))
        if entry is None:
            return None
        try:
            if self._stamp(path) != entry[0]:
                return None
        except OSError:
            return None
        return entry[1].copy()


def _pixels(image: Image.Image) -> int:
    return image.width * image.height


_recent = _RecentImages()
_encoder = ThreadPoolExecutor(max_workers=4, thread_name_prefix="png-encode")


def save_png(image: Image.Image, path: str | os.PathLike[str], *, compress_level: int = 1) -> Path:
    """Encode ``image`` as PNG and write it atomically. The same pixels give the same bytes.

    PNG is lossless at every level; level 1 encodes several times faster than Pillow's
    default 6 for files about a third larger, the right trade for images written per
    variation and read back at once.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    target = atomic_write_bytes(path, buffer.getvalue())
    _recent.remember(target, _to_rgb(image))
    return target


def save_pngs(items: Sequence[tuple[Image.Image, str | os.PathLike[str]]]) -> list[Path]:
    """Save several images at once; Pillow's encoder releases the GIL, so they overlap."""
    if len(items) <= 1:
        return [save_png(image, path) for image, path in items]
    return list(_encoder.map(lambda item: save_png(*item), items))


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, fully decode and validate an image, returned in RGB.

    EXIF orientation is applied (a phone portrait stays upright) and transparent pixels are
    composited over white rather than turning black. ``max_pixels`` is checked from the
    header before decoding; ``None`` leaves only Pillow's own decompression-bomb limit.
    Every failure raises :class:`InvalidImageError` naming the file and the cause.
    """
    source = Path(path)
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"`max_pixels` must be a positive integer or None, got {max_pixels!r}.")
    recent = _recent.get(source)
    if recent is not None and (max_pixels is None or _pixels(recent) <= max_pixels):
        return recent
    if not source.is_file():
        raise InvalidImageError(f"Image file {str(source)!r} does not exist or is not a file.")
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between its limit and twice its limit; a
            # warning is no use to a server, so it becomes the same error as a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                width, height = opened.size
                if max_pixels is not None and width * height > max_pixels:
                    raise InvalidImageError(
                        f"Image file {str(source)!r} is {width}x{height} = {width * height} pixels, "
                        f"more than the limit of {max_pixels}."
                    )
                opened.load()
                image = ImageOps.exif_transpose(opened)
                return _to_rgb(image)
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"Image file {str(source)!r} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"File {str(source)!r} is not an image Pillow can read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated",
        # "broken data stream"), SyntaxError (bad PNG chunks) or ValueError.
        raise InvalidImageError(f"Image file {str(source)!r} is truncated or corrupt: {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def image_digest(image: Image.Image) -> str:
    """SHA-256 of the image's size and RGB pixels: equal pixels give equal digests whatever
    the file format or metadata, so it can key caches of generations and embeddings."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode("ascii"))
    digest.update(rgb.tobytes())
    return digest.hexdigest()
